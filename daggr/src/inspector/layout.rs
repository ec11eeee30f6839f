//! Server-side layout, layered left to right (Sugiyama style):
//!
//! 1. layers by longest path from a source;
//! 2. an edge spanning several layers gets a dummy node in each layer it crosses, so it has
//!    a slot of its own there and is routed through the gaps between cards instead of
//!    under them (its route is the list of those slots);
//! 3. barycenter sweeps order each layer so edges cross less;
//! 4. vertical positions: each node is pulled towards its neighbours' anchors (chains read as
//!    straight lines) while keeping its layer's order and gaps, by isotonic regression (pool
//!    adjacent violators), alternately from the left and from the right.
//!
//! Deterministic, so screenshots are stable. Every pass is a loop over nodes or layers
//! (Kahn's order for the layering): no recursion, so graphs of any depth lay out on any stack.

use serde::Serialize;

/// A node's box on the canvas.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct Placed {
    /// Left.
    pub x: f64,
    /// Top.
    pub y: f64,
    /// Width.
    pub w: f64,
    /// Height.
    pub h: f64,
}

/// The layout of a graph: a box per node, a route per edge, the canvas size.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    /// One box per node.
    pub boxes: Vec<Placed>,
    /// Per edge (in the order given), the points an edge spanning several layers passes
    /// through: for each layer it crosses, where it enters and leaves that layer's column
    /// (`(x, y)`, left then right). Empty for an edge between neighbouring layers, and for
    /// the edges past [`MAX_DUMMIES`].
    pub routes: Vec<Vec<(f64, f64)>>,
    /// Canvas width.
    pub width: f64,
    /// Canvas height.
    pub height: f64,
}

/// Card width.
pub const CARD_W: f64 = 260.0;
const GAP_X: f64 = 110.0;
/// Vertical gap between two cards of a layer.
const GAP_Y: f64 = 36.0;
/// Vertical gap between an edge's slot and its neighbours in a layer.
const GAP_EDGE: f64 = 12.0;
/// Height of an edge's slot in a layer it crosses.
const SLOT_H: f64 = 10.0;
const MARGIN: f64 = 40.0;
/// Where a card lines up with its neighbours: its first port row's middle (the page's
/// header is 31 px, then 4 px of padding and 26 px rows).
const CARD_ANCHOR: f64 = 49.0;
/// At most this many dummy nodes: a graph whose long edges would need more keeps the rest
/// of them as direct curves (the layout stays linear in the graph's size).
pub const MAX_DUMMIES: usize = 200_000;
const ORDER_SWEEPS: usize = 4;
const POSITION_SWEEPS: usize = 8;

/// Card geometry, mirrored by the page (inspector/src/cards.ts and inspector.css): borders,
/// header, padding, port rows, the room for a rich preview (image, text, JSON), a little
/// space, and the footer (why the node computed or hit the cache, the history's ‹ n/m ›).
const BORDERS: f64 = 2.0;
const HEAD: f64 = 31.0;
const PAD: f64 = 4.0;
const ROW: f64 = 26.0;
const PREVIEW_ROOM: f64 = 64.0;
const SPACE: f64 = 4.0;
const FOOTER: f64 = 22.0;

/// Port rows a text area takes (a row is 26 px; the page's `rowSpan` in cards.ts agrees).
const TEXTAREA_ROWS: usize = 3;

/// What a card shows, for its height.
#[derive(Clone, Copy, Debug, Default)]
pub struct CardShape {
    /// Input and output port rows (a port edited in a text area counts [`port_rows`]).
    pub ports: usize,
    /// Whether an output can have a rich preview (media, text, JSON) on the closed card;
    /// numbers and booleans fit in their port row, and a pipeline input's value is in its
    /// input's editor.
    pub preview: bool,
    /// Rows below the ports for a composite node's parts: a map's item chips (2), a
    /// choice's variants (1).
    pub parts: usize,
}

/// The closed card height of a node.
pub fn card_height(shape: CardShape) -> f64 {
    BORDERS
        + HEAD
        + PAD
        + ROW * (shape.ports + shape.parts) as f64
        + if shape.preview { PREVIEW_ROOM } else { 0.0 }
        + SPACE
        + FOOTER
}

/// The port rows an input edited with `widget` takes: a text area is taller than a line.
pub fn port_rows(widget: Option<&str>) -> usize {
    if widget == Some("textarea") {
        TEXTAREA_ROWS
    } else {
        1
    }
}

/// The rows a node of this kind needs below its ports for its parts (see [`CardShape`]).
pub fn parts_rows(kind: &str) -> usize {
    match kind {
        "map" => 2,
        "choice" => 1,
        _ => 0,
    }
}

/// Whether values of this (short) type name fit in a port row (no rich preview).
pub fn fits_in_a_row(ty: &str) -> bool {
    matches!(
        ty,
        "bool"
            | "u8"
            | "u16"
            | "u32"
            | "u64"
            | "u128"
            | "usize"
            | "i8"
            | "i16"
            | "i32"
            | "i64"
            | "i128"
            | "isize"
            | "f32"
            | "f64"
            | "()"
    )
}

/// The graph the ordering and positioning passes work on: the real nodes, then one dummy
/// per layer crossed by a long edge.
struct Layered {
    /// Per node (real and dummy), its layer.
    layer: Vec<usize>,
    ups: Vec<Vec<usize>>,
    downs: Vec<Vec<usize>>,
    /// Per edge, its dummies from left to right.
    chains: Vec<Vec<usize>>,
}

/// Longest-path layers, by Kahn's order (parents first).
fn layers(n: usize, edges: &[(usize, usize)]) -> Vec<usize> {
    let mut downs = vec![Vec::new(); n];
    let mut indegree = vec![0usize; n];
    for &(a, b) in edges {
        downs[a].push(b);
        indegree[b] += 1;
    }
    let mut queue: Vec<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
    let mut head = 0;
    let mut layer = vec![0usize; n];
    while head < queue.len() {
        let v = queue[head];
        head += 1;
        for &d in &downs[v] {
            layer[d] = layer[d].max(layer[v] + 1);
            indegree[d] -= 1;
            if indegree[d] == 0 {
                queue.push(d);
            }
        }
    }
    layer
}

fn with_dummies(n: usize, edges: &[(usize, usize)]) -> Layered {
    let mut layer = layers(n, edges);
    let mut ups = vec![Vec::new(); n];
    let mut downs = vec![Vec::new(); n];
    let mut chains = vec![Vec::new(); edges.len()];
    let mut dummies = 0usize;
    for (e, &(a, b)) in edges.iter().enumerate() {
        let span = layer[b].saturating_sub(layer[a]);
        if span <= 1 || dummies + span - 1 > MAX_DUMMIES {
            ups[b].push(a);
            downs[a].push(b);
            continue;
        }
        let mut prev = a;
        for l in layer[a] + 1..layer[b] {
            let d = layer.len();
            layer.push(l);
            ups.push(vec![prev]);
            downs.push(Vec::new());
            downs[prev].push(d);
            chains[e].push(d);
            prev = d;
        }
        dummies += span - 1;
        downs[prev].push(b);
        ups[b].push(prev);
    }
    Layered {
        layer,
        ups,
        downs,
        chains,
    }
}

/// Orders each layer by barycenter sweeps: the mean position of a node's neighbours in the
/// previous layer, then in the next one.
fn order(g: &Layered) -> Vec<Vec<usize>> {
    let layers = g.layer.iter().copied().max().map_or(0, |m| m + 1);
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); layers];
    for (v, &l) in g.layer.iter().enumerate() {
        rows[l].push(v);
    }
    let mut pos = vec![0.0f64; g.layer.len()];
    for row in &rows {
        for (i, &v) in row.iter().enumerate() {
            pos[v] = i as f64;
        }
    }
    for sweep in 0..ORDER_SWEEPS {
        let forward = sweep % 2 == 0;
        let range: Vec<usize> = if forward {
            (1..layers).collect()
        } else {
            (0..layers.saturating_sub(1)).rev().collect()
        };
        let neighbours = if forward { &g.ups } else { &g.downs };
        for l in range {
            let mut keyed: Vec<(f64, usize)> = rows[l]
                .iter()
                .map(|&v| {
                    let ns = &neighbours[v];
                    let key = if ns.is_empty() {
                        pos[v]
                    } else {
                        ns.iter().map(|&u| pos[u]).sum::<f64>() / ns.len() as f64
                    };
                    (key, v)
                })
                .collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            rows[l] = keyed.into_iter().map(|(_, v)| v).collect();
            for (i, &v) in rows[l].iter().enumerate() {
                pos[v] = i as f64;
            }
        }
    }
    rows
}

/// Tops `y` for a row of boxes (heights `h`, gaps `gap[i]` after box `i`) as close as
/// possible to `wanted` (least squares) keeping their order and gaps: with
/// `z_i = y_i - offset_i` the constraint is `z` non-decreasing, which pool adjacent
/// violators solves exactly in one pass.
fn place_row(wanted: &[f64], h: &[f64], gap: &[f64]) -> Vec<f64> {
    let mut offset = Vec::with_capacity(wanted.len());
    let mut at = 0.0;
    for i in 0..wanted.len() {
        offset.push(at);
        at += h[i] + gap[i];
    }
    // Blocks of (sum of targets, count), merged while they are out of order.
    let mut blocks: Vec<(f64, usize)> = Vec::with_capacity(wanted.len());
    for i in 0..wanted.len() {
        blocks.push((wanted[i] - offset[i], 1));
        while blocks.len() > 1 {
            let (s1, n1) = blocks[blocks.len() - 1];
            let (s0, n0) = blocks[blocks.len() - 2];
            if s0 / n0 as f64 <= s1 / n1 as f64 {
                break;
            }
            blocks.pop();
            *blocks.last_mut().expect("two blocks") = (s0 + s1, n0 + n1);
        }
    }
    let mut y = Vec::with_capacity(wanted.len());
    for (sum, count) in blocks {
        let z = sum / count as f64;
        for _ in 0..count {
            y.push(z + offset[y.len()]);
        }
    }
    y
}

/// Lays out `n` nodes given `edges` (from, to) and each node's height.
pub fn layout(n: usize, edges: &[(usize, usize)], heights: &[f64]) -> Layout {
    let g = with_dummies(n, edges);
    let rows = order(&g);
    let total = g.layer.len();
    let height_of = |v: usize| if v < n { heights[v] } else { SLOT_H };
    let anchor_of = |v: usize| {
        if v < n {
            CARD_ANCHOR.min(heights[v] / 2.0)
        } else {
            SLOT_H / 2.0
        }
    };
    let gap_between = |a: usize, b: usize| {
        if a < n && b < n {
            GAP_Y
        } else {
            GAP_EDGE
        }
    };
    // Start packed from the top, then pull each node towards its neighbours' anchors.
    let mut top = vec![0.0f64; total];
    for row in &rows {
        let mut at = 0.0;
        for (i, &v) in row.iter().enumerate() {
            if i > 0 {
                at += gap_between(row[i - 1], v);
            }
            top[v] = at;
            at += height_of(v);
        }
    }
    for sweep in 0..POSITION_SWEEPS {
        let forward = sweep % 2 == 0;
        let neighbours = if forward { &g.ups } else { &g.downs };
        let order: Vec<usize> = if forward {
            (0..rows.len()).collect()
        } else {
            (0..rows.len()).rev().collect()
        };
        for l in order {
            let row = &rows[l];
            if row.is_empty() {
                continue;
            }
            let wanted: Vec<f64> = row
                .iter()
                .map(|&v| {
                    let ns = &neighbours[v];
                    if ns.is_empty() {
                        top[v]
                    } else {
                        let mean = ns.iter().map(|&u| top[u] + anchor_of(u)).sum::<f64>()
                            / ns.len() as f64;
                        mean - anchor_of(v)
                    }
                })
                .collect();
            let h: Vec<f64> = row.iter().map(|&v| height_of(v)).collect();
            let gap: Vec<f64> = (0..row.len())
                .map(|i| row.get(i + 1).map_or(0.0, |&b| gap_between(row[i], b)))
                .collect();
            for (&v, y) in row.iter().zip(place_row(&wanted, &h, &gap)) {
                top[v] = y;
            }
        }
    }
    let min_top = top.iter().copied().fold(f64::INFINITY, f64::min);
    let shift = if min_top.is_finite() {
        MARGIN - min_top
    } else {
        0.0
    };
    let column = |l: usize| MARGIN + l as f64 * (CARD_W + GAP_X);
    // Whole pixels: crisp card edges, and the page gets "344" where it got
    // "343.93989492692526" (a 5 000-node graph's JSON is a sixth smaller). Rows keep their
    // order: the gaps in them are far wider than a pixel.
    let top_of = |v: usize| (top[v] + shift).round();
    let mut height: f64 = 0.0;
    let boxes: Vec<Placed> = (0..n)
        .map(|v| {
            let b = Placed {
                x: column(g.layer[v]),
                y: top_of(v),
                w: CARD_W,
                h: heights[v],
            };
            height = height.max(b.y + b.h);
            b
        })
        .collect();
    let routes = g
        .chains
        .iter()
        .map(|chain| {
            chain
                .iter()
                .flat_map(|&d| {
                    let y = top_of(d) + SLOT_H / 2.0;
                    let x = column(g.layer[d]);
                    [(x, y), (x + CARD_W, y)]
                })
                .collect()
        })
        .collect();
    let layers = rows.len();
    let width = MARGIN * 2.0 + layers as f64 * (CARD_W + GAP_X) - GAP_X;
    Layout {
        boxes,
        routes,
        width: width.max(MARGIN * 2.0),
        height: (height + MARGIN).max(MARGIN * 2.0),
    }
}

/// A layout where some nodes share a box: the pipeline inputs of a group are one card.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupedLayout {
    /// The layout: one box per node (a group's members all get the group's box), one route
    /// per edge.
    pub layout: Layout,
    /// One box per group, in the order given.
    pub groups: Vec<Placed>,
}

/// Lays out `n` nodes as [`layout`] does, but the members of each group (node indices, and
/// the group card's height) are placed as one box: the group is one node of the layered
/// graph, whose edges are its members' edges (the page starts each at its member's row).
/// A node is in one group at most (the graph checks it when built); an empty group gets
/// no box of its own (a zero box at the margin).
pub fn layout_grouped(
    n: usize,
    edges: &[(usize, usize)],
    heights: &[f64],
    groups: &[(Vec<usize>, f64)],
) -> GroupedLayout {
    let mut group_of: Vec<Option<usize>> = vec![None; n];
    for (g, (members, _)) in groups.iter().enumerate() {
        for &m in members.iter().filter(|&&m| m < n) {
            group_of[m].get_or_insert(g);
        }
    }
    // Units: the nodes not in a group, and one per group, in the order first met.
    let mut unit_of = vec![0usize; n];
    let mut group_unit: Vec<Option<usize>> = vec![None; groups.len()];
    let mut unit_heights = Vec::with_capacity(n);
    for v in 0..n {
        unit_of[v] = match group_of[v] {
            Some(g) => *group_unit[g].get_or_insert_with(|| {
                unit_heights.push(groups[g].1);
                unit_heights.len() - 1
            }),
            None => {
                unit_heights.push(heights[v]);
                unit_heights.len() - 1
            }
        };
    }
    let unit_edges: Vec<(usize, usize)> = edges
        .iter()
        .map(|&(a, b)| (unit_of[a], unit_of[b]))
        .collect();
    let units = layout(unit_heights.len(), &unit_edges, &unit_heights);
    let boxes = (0..n).map(|v| units.boxes[unit_of[v]]).collect();
    let group_boxes = group_unit
        .iter()
        .map(|u| {
            u.map_or(
                Placed {
                    x: MARGIN,
                    y: MARGIN,
                    w: 0.0,
                    h: 0.0,
                },
                |u| units.boxes[u],
            )
        })
        .collect();
    GroupedLayout {
        layout: Layout {
            boxes,
            routes: units.routes,
            width: units.width,
            height: units.height,
        },
        groups: group_boxes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlaps(a: &Placed, b: &Placed) -> bool {
        a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h
    }

    #[test]
    fn layers_follow_the_longest_path() {
        // 0 -> 1 -> 3, 0 -> 2 -> 3, 0 -> 3
        let l = layout(4, &[(0, 1), (1, 3), (0, 2), (2, 3), (0, 3)], &[100.0; 4]);
        let p = &l.boxes;
        assert!(p[0].x < p[1].x && p[1].x == p[2].x && p[2].x < p[3].x);
        assert!(!overlaps(&p[1], &p[2]), "nodes of one layer do not overlap");
        assert!(l.width > p[3].x + p[3].w - 1.0 && l.height >= p[1].y.max(p[2].y) + 100.0);
        assert_eq!(l.routes[4].len(), 2, "0 -> 3 crosses layer 1: {l:?}");
    }

    #[test]
    fn barycenter_ordering_uncrosses_parallel_chains() {
        // Two chains a0->a1, b0->b1 declared so that the second layer starts crossed.
        let l = layout(4, &[(0, 3), (1, 2)], &[50.0; 4]);
        let p = &l.boxes;
        assert!((p[0].y < p[1].y) == (p[3].y < p[2].y), "{p:?}");
    }

    #[test]
    fn chains_are_straight_whatever_the_card_heights() {
        // A short input card feeding a taller one: their anchors (first port rows) line up.
        let l = layout(3, &[(0, 1), (1, 2)], &[100.0, 180.0, 141.0]);
        let anchors: Vec<f64> = l.boxes.iter().map(|b| b.y + CARD_ANCHOR).collect();
        assert!(
            anchors.windows(2).all(|a| (a[0] - a[1]).abs() < 1e-6),
            "{l:?}"
        );
    }

    /// The quick start's shape: inputs width, height, seed, sigma; scene(width, height,
    /// seed); soft(scene, sigma); outline(scene); stats(soft, outline); text(stats). The
    /// edge sigma -> soft crosses scene's layer: it must pass beside scene, not under it.
    #[test]
    fn long_edges_pass_beside_cards_not_under_them() {
        let (width, height, seed, sigma, scene, soft, outline, stats, text) =
            (0, 1, 2, 3, 4, 5, 6, 7, 8);
        let edges = [
            (width, scene),
            (height, scene),
            (seed, scene),
            (scene, soft),
            (sigma, soft),
            (scene, outline),
            (soft, stats),
            (outline, stats),
            (stats, text),
        ];
        let heights = [95.0, 95.0, 95.0, 95.0, 165.0, 165.0, 139.0, 165.0, 165.0];
        let l = layout(9, &edges, &heights);
        let route = &l.routes[4];
        assert_eq!(route.len(), 2, "{l:?}");
        for b in &l.boxes {
            for &(x, y) in route {
                let inside =
                    x >= b.x && x <= b.x + b.w && y > b.y - GAP_EDGE && y < b.y + b.h + GAP_EDGE;
                assert!(!inside, "the route point {x},{y} touches the card {b:?}");
            }
        }
        for (i, a) in l.boxes.iter().enumerate() {
            for b in &l.boxes[i + 1..] {
                assert!(!overlaps(a, b), "{a:?} overlaps {b:?}");
            }
        }
    }

    #[test]
    fn rows_keep_their_order_and_gaps_as_close_to_the_wish_as_possible() {
        let y = place_row(
            &[100.0, 90.0, 500.0],
            &[50.0, 50.0, 50.0],
            &[10.0, 10.0, 0.0],
        );
        assert_eq!(y, vec![65.0, 125.0, 500.0]);
        assert_eq!(place_row(&[], &[], &[]), Vec::<f64>::new());
    }

    /// Deep graphs lay out without recursion, on a tokio worker's 2 MiB stack: a
    /// 100 000-node chain (100 000 layers) and 100 layers of 1 000 nodes.
    #[test]
    fn deep_graphs_lay_out_on_a_small_stack() {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(|| {
                let n = 100_000;
                let chain: Vec<(usize, usize)> = (1..n).map(|i| (i - 1, i)).collect();
                let l = layout(n, &chain, &vec![120.0; n]);
                let p = &l.boxes;
                assert!(p.windows(2).all(|b| b[0].x < b[1].x && b[0].y == b[1].y));
                assert!(l.width > p[n - 1].x);
                let layered: Vec<(usize, usize)> = (1000..n)
                    .flat_map(|v| {
                        let (l, i) = (v / 1000, v % 1000);
                        let a = (l - 1) * 1000 + i;
                        let b = (l - 1) * 1000 + (i + 7) % 1000;
                        [(a, v), (b, v)]
                    })
                    .collect();
                let l = layout(n, &layered, &vec![120.0; n]);
                assert!((0..n).all(|v| l.boxes[v].x == l.boxes[v / 1000 * 1000].x));
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn five_hundred_nodes_lay_out_quickly_and_deterministically() {
        let edges: Vec<(usize, usize)> = (1..500).map(|i| ((i - 1) / 3, i)).collect();
        let a = layout(500, &edges, &[120.0; 500]);
        let b = layout(500, &edges, &[120.0; 500]);
        assert_eq!(a, b);
    }

    /// Inputs w, h, s of a group feed a (w, h) and b (s); t is an input of its own feeding b.
    /// The group is one box, in the first column, shared by its members; nothing overlaps;
    /// without groups the layout is the plain one.
    #[test]
    fn a_group_of_inputs_is_one_box() {
        let (w, h, s, t, a, b) = (0, 1, 2, 3, 4, 5);
        let edges = [(w, a), (h, a), (s, b), (t, b)];
        let heights = [95.0, 95.0, 95.0, 95.0, 150.0, 150.0];
        let group_h = card_height(CardShape {
            ports: 3,
            ..CardShape::default()
        });
        let g = layout_grouped(6, &edges, &heights, &[(vec![w, h, s], group_h)]);
        let p = &g.layout.boxes;
        assert_eq!(p[w], p[h]);
        assert_eq!(p[h], p[s]);
        assert_eq!(g.groups[0], p[w]);
        assert_eq!(p[w].h, group_h);
        assert_eq!(p[w].x, p[t].x, "the group sits in the inputs' column");
        assert!(p[a].x > p[w].x && p[b].x > p[w].x);
        let distinct = [p[w], p[t], p[a], p[b]];
        for (i, x) in distinct.iter().enumerate() {
            for y in &distinct[i + 1..] {
                assert!(!overlaps(x, y), "{x:?} overlaps {y:?}");
            }
        }
        assert_eq!(g.layout.routes.len(), edges.len());
        let plain = layout_grouped(6, &edges, &heights, &[]);
        assert_eq!(plain.layout, layout(6, &edges, &heights));
    }

    #[test]
    fn text_areas_and_parts_make_cards_taller() {
        let base = card_height(CardShape {
            ports: 2,
            ..CardShape::default()
        });
        let tall = card_height(CardShape {
            ports: port_rows(Some("textarea")) + 1,
            ..CardShape::default()
        });
        assert_eq!(tall - base, 2.0 * ROW);
        assert_eq!(port_rows(Some("text")), 1);
        let map = card_height(CardShape {
            ports: 2,
            parts: parts_rows("map"),
            ..CardShape::default()
        });
        assert_eq!(map - base, 2.0 * ROW);
        assert_eq!(parts_rows("fn"), 0);
    }

    /// An edge from the first layer to the last of a long chain needs a dummy per layer;
    /// past [`MAX_DUMMIES`] edges are left as direct curves instead of growing without bound.
    #[test]
    fn dummies_are_bounded() {
        let n = 1000;
        let mut edges: Vec<(usize, usize)> = (1..n).map(|i| (i - 1, i)).collect();
        edges.extend((0..300).map(|_| (0, n - 1)));
        let g = with_dummies(n, &edges);
        assert!(g.layer.len() - n <= MAX_DUMMIES);
        assert_eq!(g.chains[n - 1].len(), n - 2);
    }
}
