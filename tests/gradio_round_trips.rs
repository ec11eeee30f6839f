//! Issue 17 §3: the requests a pipeline makes of one Gradio app. Four GradioNodes on the
//! same app, fed the same image, read `/config` and `/info` once between them (preflight
//! included) and upload the image once; a second run uploads nothing. After the app
//! restarts on a new machine (same port, its uploads gone), a run still succeeds: the
//! image goes up again, once.
//!
//! The requests are counted by the fault proxy (tests/gradio_support/fault_proxy.rs), in
//! front of a real fixture app; the figures are printed (`--nocapture` shows them).
//! Before the shared connection (each node its own), the four nodes made 4 `/config`,
//! 4 `/info` and 4 uploads on Gradio 4.44.1, 5.50.0 and 6.31.0 alike, and after the
//! restart every node failed ("… was not uploaded by a user", Gradio 4: "… is not in the
//! upload folder").

mod gradio_support;

use daggr::gradio::GradioNode;
use daggr::{CachePolicy, Configure, FnNode, Graph, Image, Output, Pipeline, Scope};
use gradio_support::fault_proxy::{FaultProxy, Seen};
use gradio_support::{png, shared, temp_cache, GradioApp};

/// What a stretch of requests asked of the app, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tally {
    config: usize,
    info: usize,
    upload: usize,
    app_id: usize,
    login: usize,
    /// Submitting calls and reading their results (`/call/…`, `/queue/…`).
    calls: usize,
    /// File outputs read (`/file=…`).
    downloads: usize,
    other: usize,
}

impl Tally {
    fn of(seen: &[Seen]) -> Tally {
        let mut t = Tally::default();
        for s in seen {
            let path = s.path.split('?').next().unwrap_or("");
            let route = path.strip_prefix("/gradio_api").unwrap_or(path);
            match route {
                "/config" => t.config += 1,
                "/info" => t.info += 1,
                "/upload" => t.upload += 1,
                "/app_id" => t.app_id += 1,
                "/login" => t.login += 1,
                r if r.starts_with("/call/") || r.starts_with("/queue/") => t.calls += 1,
                r if r.starts_with("/file=") => t.downloads += 1,
                _ => t.other += 1,
            }
        }
        t
    }

    fn show(&self) -> String {
        format!(
            "/config {}, /info {}, /upload {}, /app_id {}, /login {}, call requests {}, downloads {}, other {}",
            self.config,
            self.info,
            self.upload,
            self.app_id,
            self.login,
            self.calls,
            self.downloads,
            self.other
        )
    }
}

/// The requests the proxy saw from `from` on, tallied.
fn since(proxy: &FaultProxy, from: usize) -> Tally {
    Tally::of(&proxy.seen()[from..])
}

/// Four nodes on the app at `url`, each taking the same picture: `/invert`, `/stats`
/// (both outputs), `/stats` (the mean only) and `/contact` (the picture as a one-image
/// gallery). Never cached, so that every run calls the app.
struct Four {
    pipeline: Pipeline,
    inverted: Output<Image>,
    dims: Output<String>,
    mean: Output<f64>,
    sizes: Output<String>,
}

fn four_nodes(url: &str, cache: daggr::Cache) -> Four {
    let mut g = Graph::new("four").cache(cache);
    let picture = g.input("picture", png(6, 4, |x, y| [x as u8 * 40, y as u8 * 60, 9]));
    let inverted = g.add(
        GradioNode::new("invert", url)
            .api("/invert")
            .input::<Image>("img")
            .output::<Image>("inverted")
            .cache_policy(CachePolicy::NeverCache),
        (picture,),
    );
    let (dims, _) = g.add(
        GradioNode::new("stats", url)
            .api("/stats")
            .input::<Image>("img")
            .output::<String>("dims")
            .output::<f64>("mean")
            .cache_policy(CachePolicy::NeverCache),
        (picture,),
    );
    let mean = g.add(
        GradioNode::new("mean", url)
            .api("/stats")
            .input::<Image>("img")
            .skip_output()
            .output::<f64>("mean")
            .cache_policy(CachePolicy::NeverCache),
        (picture,),
    );
    let sheet = g.add(
        FnNode::sync("sheet", |i: Image| vec![i]).cache_policy(CachePolicy::NeverCache),
        (picture,),
    );
    let sizes = g.add(
        GradioNode::new("contact", url)
            .api("/contact")
            .input::<Vec<Image>>("items")
            .output::<String>("sizes")
            .cache_policy(CachePolicy::NeverCache),
        (sheet,),
    );
    Four {
        pipeline: g.build().unwrap(),
        inverted,
        dims,
        mean,
        sizes,
    }
}

impl Four {
    /// Runs every node and checks what the app answered.
    async fn run_and_check(&self, what: &str) {
        let report = self.pipeline.run(Scope::All).await.unwrap();
        assert!(report.is_success(), "{what}: {:?}", report.errors());
        let inverted = report.value(&self.inverted).unwrap();
        let px = image::load_from_memory(inverted.bytes()).unwrap().to_rgb8();
        assert_eq!(px.dimensions(), (6, 4), "{what}");
        assert_eq!(
            px.get_pixel(1, 2).0,
            [255 - 40, 255 - 120, 255 - 9],
            "{what}"
        );
        assert_eq!(*report.value(&self.dims).unwrap(), "6x4", "{what}");
        assert!(*report.value(&self.mean).unwrap() > 0.0, "{what}");
        assert_eq!(*report.value(&self.sizes).unwrap(), "6x4", "{what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_nodes_on_one_app_read_config_and_info_once_and_upload_a_shared_image_once() {
    let url = shared("image_app.py");
    let proxy = FaultProxy::start(&url).await;
    let (_d, cache) = temp_cache();
    let four = four_nodes(&proxy.url, cache);

    four.pipeline.preflight().await.unwrap();
    let preflight = since(&proxy, 0);
    let mark = proxy.seen().len();
    four.run_and_check("first run").await;
    let first = since(&proxy, mark);
    let mark = proxy.seen().len();
    four.run_and_check("second run").await;
    let second = since(&proxy, mark);
    let total = since(&proxy, 0);
    eprintln!(
        "four GradioNodes on one app (Gradio {}), one shared image:",
        gradio_support::gradio_version_string()
    );
    eprintln!("  preflight:  {}", preflight.show());
    eprintln!("  first run:  {}", first.show());
    eprintln!("  second run: {}", second.show());
    eprintln!("  in all:     {}", total.show());

    assert_eq!(
        total.config, 1,
        "one /config for the four nodes and preflight"
    );
    assert!(total.info <= 1, "at most one /info: {}", total.show());
    assert_eq!(
        first.upload,
        1,
        "the image the four share goes up once: {}",
        first.show()
    );
    assert_eq!(
        second.upload,
        0,
        "and is not sent again by the next run: {}",
        second.show()
    );
    assert_eq!(
        second.config + second.info + second.app_id,
        0,
        "{}",
        second.show()
    );
    assert_eq!(total.login + total.other, 0, "{}", total.show());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_nodes_connecting_at_once_in_their_first_run_share_one_connection() {
    let url = shared("image_app.py");
    // A proxy of its own: an app no other pipeline of this process has called.
    let proxy = FaultProxy::start(&url).await;
    let (_d, cache) = temp_cache();
    let four = four_nodes(&proxy.url, cache);
    four.run_and_check("a first run without preflight").await;
    let lazy = since(&proxy, 0);
    eprintln!(
        "four GradioNodes connecting lazily, at once (Gradio {}):",
        gradio_support::gradio_version_string()
    );
    eprintln!("  first run: {}", lazy.show());
    assert_eq!(lazy.config, 1, "{}", lazy.show());
    assert!(lazy.info <= 1, "{}", lazy.show());
    assert_eq!(lazy.upload, 1, "{}", lazy.show());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_app_restarts_with_its_uploads_gone_a_run_uploads_again_and_succeeds() {
    let mut app = GradioApp::start("image_app.py");
    let proxy = FaultProxy::start(&app.url).await;
    let (_d, cache) = temp_cache();
    let four = four_nodes(&proxy.url, cache);
    four.run_and_check("before the restarts").await;
    let before = since(&proxy, 0);

    // Restarted on the same machine, the app still has the files: nothing is sent again.
    app.restart();
    let mark = proxy.seen().len();
    four.run_and_check("after a restart that kept the uploads")
        .await;
    let kept = since(&proxy, mark);

    app.restart_on_a_new_machine();
    let mark = proxy.seen().len();
    four.run_and_check("after a restart that lost the uploads")
        .await;
    let after = since(&proxy, mark);
    eprintln!("four GradioNodes, the app restarted on the same port (a new process):");
    eprintln!("  before the restarts:         {}", before.show());
    eprintln!("  restarted, files kept:       {}", kept.show());
    eprintln!("  restarted, files gone:       {}", after.show());
    assert_eq!(kept.upload, 0, "{}", kept.show());
    assert_eq!(
        after.upload,
        1,
        "the image goes up again, once: {}",
        after.show()
    );
    assert!(
        after.config <= 1 && after.info <= 1 && after.app_id <= 1,
        "the app's description is read again at most once: {}",
        after.show()
    );

    // A pipeline built after the restart calls the new process as well.
    let mark = proxy.seen().len();
    let (_d2, cache2) = temp_cache();
    let fresh = four_nodes(&proxy.url, cache2);
    fresh.run_and_check("a new pipeline").await;
    let fresh_tally = since(&proxy, mark);
    eprintln!("  a new pipeline after that:   {}", fresh_tally.show());
    assert!(fresh_tally.upload <= 1, "{}", fresh_tally.show());
}
