//! The HF token from the environment never leaves for a host that is not Hugging Face's:
//! not an OpenAI-compatible server, not another router URL, not an Inference Endpoint URL
//! on another host, not a provider's file host. (Its own test binary, because it sets
//! `HF_TOKEN` and `HF_ROUTER_URL` for the whole process before anything else runs.)

#[path = "common/router_stand_in.rs"]
mod router_stand_in;

use daggr::{constant, Cache, Graph, InferenceNode, Scope};
use router_stand_in::RouterStandIn;

#[test]
fn the_environments_token_stays_with_hugging_face_hosts() {
    // Set before any thread exists: the only test in this binary.
    std::env::set_var("HF_TOKEN", "hf_environment_secret");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let r = RouterStandIn::start().await;
        std::env::set_var("HF_ROUTER_URL", &r.url);
        let dir = tempfile::tempdir().unwrap();
        let mut g = Graph::new("env-token").cache(Cache::open(dir.path()).unwrap());
        let prompt = g.input("prompt", "x".to_string());
        // The router URL from HF_ROUTER_URL (a loopback stand-in here).
        let routed = g.add(InferenceNode::chat("routed", "org/chat"), (prompt,));
        let openai = g.add(
            InferenceNode::chat("openai", "org/chat").base_url(format!("{}/together/v1", r.url)),
            (prompt,),
        );
        let endpoint = g.add(
            InferenceNode::text_to_image("endpoint", "org/img")
                .inference_endpoint(format!("{}/hf-inference/models/org/img", r.url)),
            (prompt,),
        );
        let fal = g.add(
            InferenceNode::text_to_image("fal", "org/img:fal-ai"),
            (constant("y".to_string()),),
        );
        let pipeline = g.build().unwrap();
        let report = pipeline.run(Scope::All).await.unwrap();
        assert!(report.is_success(), "{:?}", report.errors());
        assert_eq!(*report.value(&routed.text).unwrap(), "echo: x");
        assert_eq!(*report.value(&openai.text).unwrap(), "echo: x");
        assert!(report.value(&endpoint).is_ok() && report.value(&fal).is_ok());

        let requests = r.requests();
        let routes: Vec<&str> = requests.iter().map(|q| q.route.as_str()).collect();
        assert_eq!(
            {
                let mut sorted = routes.clone();
                sorted.sort();
                sorted
            },
            [
                "GET /files/out.png",
                "POST /fal-ai/org/img",
                "POST /hf-inference/models/org/img",
                "POST /together/v1/chat/completions",
                "POST /v1/chat/completions",
            ]
        );
        for q in &requests {
            assert_eq!(q.auth(), None, "{} got the token", q.route);
        }
        let spec = pipeline
            .nodes()
            .find(|n| n.spec().name == "routed")
            .unwrap()
            .spec()
            .clone();
        assert_eq!(spec.params["endpoint"]["url"], r.url.as_str());
    });
}
