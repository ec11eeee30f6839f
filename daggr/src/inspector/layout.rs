//! Server-side layout: longest-path layering left to right, then a few barycenter sweeps
//! to order each layer so edges cross less. Deterministic, so screenshots are stable.
//! Every pass is a loop over nodes or layers (Kahn's order for the layering): no recursion,
//! so graphs of any depth lay out on any stack.

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

/// Card width.
pub const CARD_W: f64 = 260.0;
const GAP_X: f64 = 110.0;
const GAP_Y: f64 = 36.0;
const MARGIN: f64 = 40.0;

/// The card height for a node with this many ports.
pub fn card_height(inputs: usize, outputs: usize) -> f64 {
    96.0 + 28.0 * (inputs + outputs) as f64
}

/// Lays out `n` nodes given `edges` (from, to) and each node's height; returns the boxes
/// and the canvas size.
pub fn layout(n: usize, edges: &[(usize, usize)], heights: &[f64]) -> (Vec<Placed>, f64, f64) {
    let mut ups = vec![Vec::new(); n];
    let mut downs = vec![Vec::new(); n];
    for &(a, b) in edges {
        ups[b].push(a);
        downs[a].push(b);
    }
    // Longest path from a source: Kahn order guarantees parents first.
    let mut indegree: Vec<usize> = ups.iter().map(Vec::len).collect();
    let mut queue: Vec<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    let mut head = 0;
    while head < queue.len() {
        let v = queue[head];
        head += 1;
        order.push(v);
        for &d in &downs[v] {
            indegree[d] -= 1;
            if indegree[d] == 0 {
                queue.push(d);
            }
        }
    }
    let mut layer = vec![0usize; n];
    for &v in &order {
        for &d in &downs[v] {
            layer[d] = layer[d].max(layer[v] + 1);
        }
    }
    let layers = layer.iter().copied().max().map_or(0, |m| m + 1);
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); layers];
    for v in 0..n {
        rows[layer[v]].push(v);
    }
    // Barycenter sweeps: order by the mean position of neighbours in the previous layer,
    // then in the next one.
    let mut pos = vec![0.0f64; n];
    let set_pos = |rows: &Vec<Vec<usize>>, pos: &mut Vec<f64>| {
        for row in rows {
            for (i, &v) in row.iter().enumerate() {
                pos[v] = i as f64;
            }
        }
    };
    set_pos(&rows, &mut pos);
    for sweep in 0..4 {
        let forward = sweep % 2 == 0;
        let range: Vec<usize> = if forward {
            (1..layers).collect()
        } else {
            (0..layers.saturating_sub(1)).rev().collect()
        };
        for l in range {
            let neighbours = if forward { &ups } else { &downs };
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
    let mut placed = vec![
        Placed {
            x: 0.0,
            y: 0.0,
            w: CARD_W,
            h: 0.0
        };
        n
    ];
    // One row pitch for every layer, so a node and its neighbours line up across layers
    // (chains read as straight lines) whatever their port counts.
    let pitch = heights.iter().copied().fold(0.0f64, f64::max) + GAP_Y;
    let mut height: f64 = 0.0;
    for (l, row) in rows.iter().enumerate() {
        for (i, &v) in row.iter().enumerate() {
            placed[v] = Placed {
                x: MARGIN + l as f64 * (CARD_W + GAP_X),
                y: MARGIN + i as f64 * pitch,
                w: CARD_W,
                h: heights[v],
            };
            height = height.max(placed[v].y + pitch);
        }
    }
    let width = MARGIN * 2.0 + layers as f64 * (CARD_W + GAP_X) - GAP_X;
    (placed, width.max(MARGIN * 2.0), height + MARGIN - GAP_Y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_follow_the_longest_path() {
        // 0 -> 1 -> 3, 0 -> 2 -> 3, 0 -> 3
        let (p, w, h) = layout(4, &[(0, 1), (1, 3), (0, 2), (2, 3), (0, 3)], &[100.0; 4]);
        assert!(p[0].x < p[1].x && p[1].x == p[2].x && p[2].x < p[3].x);
        assert_ne!(p[1].y, p[2].y, "nodes of one layer do not overlap");
        assert!(w > p[3].x + p[3].w - 1.0 && h >= p[1].y.max(p[2].y) + 100.0);
    }

    #[test]
    fn barycenter_ordering_uncrosses_parallel_chains() {
        // Two chains a0->a1, b0->b1 declared so that the second layer starts crossed.
        let (p, _, _) = layout(4, &[(0, 3), (1, 2)], &[50.0; 4]);
        assert!((p[0].y < p[1].y) == (p[3].y < p[2].y), "{p:?}");
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
                let (p, w, _) = layout(n, &chain, &vec![120.0; n]);
                assert!(p.windows(2).all(|b| b[0].x < b[1].x && b[0].y == b[1].y));
                assert!(w > p[n - 1].x);
                let layered: Vec<(usize, usize)> = (1000..n)
                    .flat_map(|v| {
                        let (l, i) = (v / 1000, v % 1000);
                        let a = (l - 1) * 1000 + i;
                        let b = (l - 1) * 1000 + (i + 7) % 1000;
                        [(a, v), (b, v)]
                    })
                    .collect();
                let (p, _, _) = layout(n, &layered, &vec![120.0; n]);
                assert!((0..n).all(|v| p[v].x == p[v / 1000 * 1000].x));
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
        assert_eq!(a.0, b.0);
    }
}
