//! InferenceNode against a protocol stand-in of the Hugging Face router
//! (`common/router_stand_in.rs`), for what no offline server provides: the per-provider
//! routes and response shapes of text to image, speech recognition, image
//! classification and embeddings, the router's chat routing, every error shape, retries
//! honouring Retry-After, timeouts, and which requests carry the token.

#[path = "common/router_stand_in.rs"]
mod router_stand_in;

use std::time::Duration;

use daggr::hf::HfToken;
use daggr::inference::Label;
use daggr::{
    constant, Audio, Cache, Configure, Error, Event, Graph, Image, InferenceNode, Outcome, Scope,
};
use router_stand_in::{RouterStandIn, PNG_1X1};
use serde_json::json;

fn temp_cache() -> (tempfile::TempDir, Cache) {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    (dir, cache)
}

fn wav() -> Audio {
    let mut bytes = b"RIFF\0\0\0\0WAVE".to_vec();
    bytes.resize(300, 1);
    Audio::named(bytes, "audio/wav", "clip.wav")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_to_image_in_each_providers_shape() {
    let r = RouterStandIn::start().await;
    let (_dir, cache) = temp_cache();
    let mut g = Graph::new("images").cache(cache);
    let prompt = g.input("prompt", "a red square".to_string());
    let t2i =
        |name: &str, model: &str| InferenceNode::text_to_image(name, model).router_url(&r.url);
    // Raw bytes.
    let hf = g.add(t2i("hf", "org/diffusion").size(64, 64).seed(1), (prompt,));
    // b64_json.
    let together = g.add(
        t2i("together", "org/diffusion:together").size(64, 32),
        (prompt,),
    );
    let nscale = g.add(t2i("nscale", "org/diffusion:nscale"), (prompt,));
    // A URL, downloaded.
    let fal = g.add(
        t2i("fal", "black-forest-labs/FLUX.1-schnell:fal-ai")
            .provider_model("fal-ai/flux/schnell")
            .size(64, 64)
            .token(HfToken::new("hf_router_only")),
        (prompt,),
    );
    let replicate = g.add(
        t2i("replicate", "org/diffusion")
            .provider("replicate")
            .provider_model("owner/sdxl"),
        (prompt,),
    );
    let report = g.build().unwrap().run(Scope::All).await.unwrap();
    assert!(report.is_success(), "{:?}", report.errors());
    for image in [&hf, &together, &nscale, &fal, &replicate] {
        let image = report.value(image).unwrap();
        assert_eq!((image.mime(), image.bytes()), ("image/png", PNG_1X1));
    }

    let body = |route: &str| r.requests_to(route)[0].body.clone();
    let hf_request = &r.requests_to("/hf-inference/models/org/diffusion")[0];
    assert_eq!(hf_request.headers["accept"], "image/png");
    assert_eq!(
        hf_request.body,
        json!({"inputs": "a red square", "parameters": {"width": 64, "height": 64, "seed": 1}})
    );
    assert_eq!(
        body("/together/v1/images/generations"),
        json!({"prompt": "a red square", "model": "org/diffusion", "response_format": "base64", "width": 64, "height": 32})
    );
    assert_eq!(
        body("/nscale/v1/images/generations")["response_format"],
        "b64_json"
    );
    assert_eq!(
        body("/fal-ai/fal-ai/flux/schnell"),
        json!({"prompt": "a red square", "image_size": {"width": 64, "height": 64}})
    );
    let replicate_request = &r.requests_to("/replicate/v1/models/owner/sdxl/predictions")[0];
    assert_eq!(replicate_request.headers["prefer"], "wait");
    assert_eq!(
        replicate_request.body,
        json!({"input": {"prompt": "a red square"}})
    );
    // The provider's file URL is fetched without credentials, although the node has a token.
    let downloads = r.requests_to("/files/out.png");
    assert_eq!(downloads.len(), 2, "fal-ai and replicate");
    assert!(downloads.iter().all(|d| d.auth().is_none()));
    assert_eq!(
        r.requests_to("/fal-ai/fal-ai/flux/schnell")[0]
            .auth()
            .as_deref(),
        Some("Bearer hf_router_only")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_speech_labels_and_text_in_each_shape() {
    let r = RouterStandIn::start().await;
    let (_dir, cache) = temp_cache();
    let mut g = Graph::new("tasks").cache(cache);
    let text = g.input("text", "a red square".to_string());
    let texts = g.input("texts", vec!["a".to_string(), "bb".to_string()]);
    let router = &r.url;
    // Embeddings: hf-inference answers a flat vector for a text, nested ones for a list;
    // OpenAI-style providers answer data[].embedding (here listed in reverse order).
    let hf_one = g.add(
        InferenceNode::feature_extraction("hf_one", "org/minilm")
            .router_url(router)
            .param("normalize", json!(true)),
        (text,),
    );
    let hf_many = g.add(
        InferenceNode::feature_extraction_batch("hf_many", "org/minilm").router_url(router),
        (texts,),
    );
    let scaleway = g.add(
        InferenceNode::feature_extraction("scaleway", "org/minilm:scaleway").router_url(router),
        (text,),
    );
    let deepinfra = g.add(
        InferenceNode::feature_extraction_batch("deepinfra", "org/minilm:deepinfra")
            .router_url(router),
        (texts,),
    );
    // Speech: raw bytes; base64 JSON with parameters; fal-ai's data URL.
    let asr = g.add(
        InferenceNode::speech_recognition("asr", "org/whisper").router_url(router),
        (constant(wav()),),
    );
    let asr_params = g.add(
        InferenceNode::speech_recognition("asr_params", "org/whisper")
            .router_url(router)
            .param("return_timestamps", json!(true)),
        (constant(wav()),),
    );
    let asr_fal = g.add(
        InferenceNode::speech_recognition("asr_fal", "openai/whisper-large-v3:fal-ai")
            .provider_model("fal-ai/whisper")
            .router_url(router),
        (constant(wav()),),
    );
    // Labels: raw bytes; top_k sends base64 JSON.
    let image = || constant(Image::new(PNG_1X1.to_vec(), "image/png"));
    let labels = g.add(
        InferenceNode::image_classification("labels", "org/vit").router_url(router),
        (image(),),
    );
    let top1 = g.add(
        InferenceNode::image_classification("top1", "org/vit")
            .router_url(router)
            .top_k(1),
        (image(),),
    );
    // Text generation: hf-inference's shape, and a provider's OpenAI completions.
    let hf_text = g.add(
        InferenceNode::text_generation("hf_text", "openai-community/gpt2")
            .router_url(router)
            .max_tokens(5),
        (text,),
    );
    let provider_text = g.add(
        InferenceNode::text_generation("provider_text", "org/llm:featherless-ai")
            .router_url(router),
        (text,),
    );
    let report = g.build().unwrap().run(Scope::All).await.unwrap();
    assert!(report.is_success(), "{:?}", report.errors());

    assert_eq!(*report.value(&hf_one).unwrap(), [12.0f32, 0.5, -0.25]);
    assert_eq!(
        *report.value(&hf_many).unwrap(),
        [vec![1.0f32, 0.5, -0.25], vec![2.0, 0.5, -0.25]]
    );
    assert_eq!(*report.value(&scaleway).unwrap(), [12.0f32, 0.5, -0.25]);
    assert_eq!(
        *report.value(&deepinfra).unwrap(),
        [vec![1.0f32, 0.5, -0.25], vec![2.0, 0.5, -0.25]],
        "sorted by index"
    );
    assert_eq!(*report.value(&asr).unwrap(), "300 bytes of speech");
    assert_eq!(
        *report.value(&asr_params).unwrap(),
        "300 bytes of speech, with parameters"
    );
    assert_eq!(
        *report.value(&asr_fal).unwrap(),
        "300 bytes of speech via fal"
    );
    assert_eq!(
        *report.value(&labels).unwrap(),
        [
            Label {
                label: "tabby cat".into(),
                score: 0.9
            },
            Label {
                label: "tiger".into(),
                score: 0.1
            }
        ]
    );
    assert_eq!(report.value(&top1).unwrap().len(), 1);
    assert_eq!(*report.value(&hf_text).unwrap(), "a red square and so on");
    assert_eq!(
        *report.value(&provider_text).unwrap(),
        "a red square and so on"
    );

    let body = |route: &str| r.requests_to(route)[0].body.clone();
    let mut hf_bodies: Vec<_> = r
        .requests_to("/hf-inference/models/org/minilm/pipeline/feature-extraction")
        .into_iter()
        .map(|q| q.body.to_string())
        .collect();
    hf_bodies.sort();
    assert_eq!(
        hf_bodies,
        [
            json!({"inputs": "a red square", "normalize": true}).to_string(),
            json!({"inputs": ["a", "bb"]}).to_string()
        ]
    );
    assert_eq!(
        body("/scaleway/v1/embeddings"),
        json!({"input": "a red square", "model": "org/minilm"})
    );
    assert!(!r.requests_to("/deepinfra/v1/openai/embeddings").is_empty());
    let asr_requests = r.requests_to("/hf-inference/models/org/whisper");
    assert!(asr_requests
        .iter()
        .any(|q| q.headers["content-type"] == "audio/wav" && q.body == json!({"bytes": 300})));
    assert!(asr_requests
        .iter()
        .any(|q| q.body["parameters"] == json!({"return_timestamps": true})));
    assert!(body("/fal-ai/fal-ai/whisper")["audio_url"]
        .as_str()
        .unwrap()
        .starts_with("data:audio/wav;base64,UklGR"));
    assert!(r
        .requests_to("/hf-inference/models/org/vit")
        .iter()
        .any(|q| q.body["parameters"] == json!({"top_k": 1})));
    assert_eq!(
        body("/hf-inference/models/openai-community/gpt2"),
        json!({"inputs": "a red square", "parameters": {"max_new_tokens": 5}})
    );
    assert_eq!(
        body("/featherless-ai/v1/completions"),
        json!({"model": "org/llm", "prompt": "a red square", "stream": false})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_chat_routes_streams_and_inference_endpoints() {
    let r = RouterStandIn::start().await;
    let (_dir, cache) = temp_cache();
    let mut g = Graph::new("chat").cache(cache);
    let prompt = g.input("prompt", "hello there".to_string());
    // Server-side provider choice: the suffix travels in `model`.
    let auto = g.add(
        InferenceNode::chat("auto", "meta-llama/Llama-3.1-8B-Instruct").router_url(&r.url),
        (prompt,),
    );
    let suffixed = g.add(
        InferenceNode::chat("suffixed", "meta-llama/Llama-3.1-8B-Instruct:together")
            .router_url(&r.url)
            .stream(true),
        (prompt,),
    );
    // Client-side: the provider's own id on its route.
    let routed = g.add(
        InferenceNode::chat("routed", "meta-llama/Llama-3.1-8B-Instruct:together")
            .provider_model("meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo")
            .router_url(&r.url),
        (prompt,),
    );
    // An Inference Endpoint: chat at {endpoint}/v1/chat/completions, text to image at its root.
    let endpoint = format!("{}/hf-inference/models/org/dedicated", r.url);
    let dedicated_chat = g.add(
        InferenceNode::chat("dedicated_chat", "tgi").inference_endpoint(&endpoint),
        (prompt,),
    );
    let dedicated_image = g.add(
        InferenceNode::text_to_image("dedicated_image", "org/dedicated")
            .inference_endpoint(&endpoint),
        (prompt,),
    );
    let pipeline = g.build().unwrap();
    let mut events = pipeline.subscribe();
    let report = pipeline.run(Scope::All).await.unwrap();
    assert!(report.is_success(), "{:?}", report.errors());
    for out in [&auto, &suffixed, &routed, &dedicated_chat] {
        assert_eq!(*report.value(&out.text).unwrap(), "echo: hello there");
        assert_eq!(report.value(&out.usage).unwrap().unwrap().total_tokens, 7);
        assert_eq!(
            report.value(&out.finish_reason).unwrap().as_deref(),
            Some("stop")
        );
    }
    assert_eq!(report.value(&dedicated_image).unwrap().bytes(), PNG_1X1);
    let chats = r.requests_to("/v1/chat/completions");
    let model_of = |route: &str| {
        chats
            .iter()
            .filter(|q| q.route == route)
            .map(|q| q.body["model"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let mut auto_models = model_of("POST /v1/chat/completions");
    auto_models.sort();
    assert_eq!(
        auto_models,
        [
            "meta-llama/Llama-3.1-8B-Instruct",
            "meta-llama/Llama-3.1-8B-Instruct:together"
        ]
    );
    assert_eq!(
        model_of("POST /together/v1/chat/completions"),
        ["meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo"]
    );
    assert_eq!(
        model_of("POST /hf-inference/models/org/dedicated/v1/chat/completions"),
        ["tgi"]
    );
    let streamed = chats.iter().find(|q| q.body["stream"] == true).unwrap();
    assert_eq!(streamed.headers["accept"], "text/event-stream");
    assert_eq!(
        streamed.body["stream_options"],
        json!({"include_usage": true})
    );
    let mut partials = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let Event::NodePartial { name, value, .. } = e {
            assert_eq!(&*name, "suffixed");
            partials.push(value["text"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(partials, ["echo: ", "echo: hello ", "echo: hello there"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_provider_error_shape_becomes_one_clear_error() {
    let r = RouterStandIn::start().await;
    let (_dir, cache) = temp_cache();
    let mut g = Graph::new("errors").cache(cache);
    let prompt = g.input("prompt", "x".to_string());
    let cases = [
        "404",
        "422",
        "500",
        "502",
        "header",
        "description",
        "errors",
        "openai",
    ];
    let outs: Vec<_> = cases
        .iter()
        .map(|case| {
            let node = InferenceNode::text_to_image(&format!("e{case}"), &format!("error/{case}"))
                .router_url(&r.url);
            g.add(node, (prompt,))
        })
        .collect();
    let stream_error = g.add(
        InferenceNode::chat("streamed", "error/stream:together")
            .router_url(&r.url)
            .stream(true),
        (prompt,),
    );
    let report = g.build().unwrap().run(Scope::All).await.unwrap();
    let err = |i: usize| report.value(&outs[i]).unwrap_err().to_string();
    assert_eq!(
        err(0),
        "node `e404` failed: model error/404 (provider hf-inference) /hf-inference/models/error/404 answered HTTP 404: Model error/404 does not exist"
    );
    let expected = [
        (
            1,
            "HTTP 422: inputs must be a string; parameters.width too large",
        ),
        (2, "HTTP 500: plain text failure"),
        (3, "HTTP 502: (an HTML error page)"),
        (4, "HTTP 400: told in a header (request id standin-42)"),
        (5, "HTTP 403: forbidden: this token cannot call providers"),
        (6, "HTTP 402: credits exhausted"),
        (7, "HTTP 400: max_tokens is too large"),
    ];
    for (i, tail) in expected {
        assert!(err(i).ends_with(tail), "{}", err(i));
        assert!(
            err(i).starts_with(&format!(
                "node `e{}` failed: model error/{} (provider hf-inference)",
                cases[i], cases[i]
            )),
            "{}",
            err(i)
        );
    }
    for case in cases {
        assert_eq!(r.attempts(case), 1, "{case}: not retried");
    }
    assert!(
        matches!(report.outcome("e404"), Some(Outcome::Failed(e)) if matches!(**e, Error::Remote { status: Some(404), .. }))
    );
    // A stream that fails midway.
    let streamed = report.value(&stream_error.text).unwrap_err().to_string();
    assert_eq!(
        streamed,
        "node `streamed` failed: model error/stream (provider together) /v1/chat/completions: the stream failed: stream failed (generation)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_honour_retry_after_and_are_bounded() {
    let r = RouterStandIn::start().await;
    let (_dir, cache) = temp_cache();
    let mut g = Graph::new("retries").cache(cache);
    let prompt = g.input("prompt", "x".to_string());
    let node = |name: &str, case: &str| {
        InferenceNode::text_to_image(name, &format!("error/{case}")).router_url(&r.url)
    };
    let twice_busy = g.add(node("twice_busy", "429-then-ok"), (prompt,));
    let slow = g.add(node("slow_busy", "429-slow"), (prompt,));
    let loading = g.add(node("loading", "loading"), (prompt,));
    let unavailable = g.add(node("unavailable", "503").retries(2), (prompt,));
    let pipeline = g.build().unwrap();
    let mut events = pipeline.subscribe();
    let report = pipeline.run(Scope::All).await.unwrap();
    assert_eq!(report.value(&twice_busy).unwrap().bytes(), PNG_1X1);
    assert_eq!(r.attempts("429-then-ok"), 3);
    assert_eq!(report.value(&slow).unwrap().bytes(), PNG_1X1);
    let slow_tries: Vec<_> = r
        .requests_to("/error/429-slow")
        .iter()
        .map(|q| q.at)
        .collect();
    let waited = slow_tries[1] - slow_tries[0];
    assert!(
        waited >= Duration::from_millis(950) && waited < Duration::from_secs(3),
        "Retry-After: 1 was honoured ({waited:?})"
    );
    // 503 with hf-inference's `estimated_time` while a model loads.
    assert_eq!(report.value(&loading).unwrap().bytes(), PNG_1X1);
    assert_eq!(r.attempts("loading"), 2);
    assert!(report
        .value(&unavailable)
        .unwrap_err()
        .to_string()
        .ends_with("answered HTTP 503: Model error/503 is currently loading"));
    assert_eq!(r.attempts("503"), 3, "one try and two retries");
    let mut retry_messages = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let Event::NodeProgress { name, message, .. } = e {
            if &*name == "slow_busy" {
                retry_messages.push(message);
            }
        }
    }
    assert_eq!(
        retry_messages,
        ["HTTP 429: Rate limit reached; retry 1 of 3 in 1.0 s"]
    );

    // A Retry-After beyond max_retry_wait is cut to it.
    let r2 = RouterStandIn::start().await;
    let (_dir2, cache2) = temp_cache();
    let mut g = Graph::new("capped").cache(cache2);
    let capped = g.add(
        InferenceNode::text_to_image("capped", "error/429-slow")
            .router_url(&r2.url)
            .max_retry_wait(Duration::from_millis(100)),
        (constant("x".to_string()),),
    );
    let started = std::time::Instant::now();
    let report = g.build().unwrap().run(Scope::All).await.unwrap();
    assert!(report.value(&capped).is_ok());
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_timeouts_and_the_node_timeout() {
    let r = RouterStandIn::start().await;
    let (_dir, cache) = temp_cache();
    let mut g = Graph::new("timeouts").cache(cache);
    let prompt = g.input("prompt", "x".to_string());
    let read = g.add(
        InferenceNode::text_to_image("read", "error/slow")
            .router_url(&r.url)
            .read_timeout(Duration::from_millis(300)),
        (prompt,),
    );
    let overall = g.add(
        InferenceNode::text_to_image("overall", "error/slow")
            .router_url(&r.url)
            .timeout(Duration::from_millis(300)),
        (prompt,),
    );
    let started = std::time::Instant::now();
    let report = g.build().unwrap().run(Scope::All).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let read = report.value(&read).unwrap_err().to_string();
    assert!(
        read.ends_with("/hf-inference/models/error/slow: timed out (no answer within the read timeout of 300ms)"),
        "{read}"
    );
    assert!(
        matches!(report.outcome("overall"), Some(Outcome::Failed(e)) if matches!(**e, Error::Timeout { .. })),
        "{:?}",
        report.value(&overall).unwrap_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_sent_to_a_custom_url_only_when_configured() {
    // The stand-in answers 401 without `Bearer hf_…`, like the router.
    let r = RouterStandIn::start_requiring_token().await;
    let (_dir, cache) = temp_cache();
    let mut g = Graph::new("tokens").cache(cache);
    let prompt = g.input("prompt", "x".to_string());
    let implicit = g.add(
        InferenceNode::text_to_image("implicit", "org/a").router_url(&r.url),
        (prompt,),
    );
    let explicit = g.add(
        InferenceNode::text_to_image("explicit", "org/b")
            .router_url(&r.url)
            .token(HfToken::new("hf_explicit"))
            .bill_to("my-org"),
        (prompt,),
    );
    let none = g.add(
        InferenceNode::text_to_image("none", "org/c")
            .router_url(&r.url)
            .token(HfToken::new("hf_dropped"))
            .without_token(),
        (prompt,),
    );
    let pipeline = g.build().unwrap();
    let report = pipeline.run(Scope::All).await.unwrap();
    assert_eq!(
        report.value(&implicit).unwrap_err().to_string(),
        "node `implicit` failed: model org/a (provider hf-inference) /hf-inference/models/org/a answered HTTP 401: Invalid credentials in Authorization header"
    );
    assert!(report.value(&explicit).is_ok());
    assert!(report.value(&none).is_err());
    let auth = |model: &str| r.requests_to(model)[0].auth();
    assert_eq!(auth("/org/a"), None);
    assert_eq!(auth("/org/b").as_deref(), Some("Bearer hf_explicit"));
    assert_eq!(r.requests_to("/org/b")[0].headers["x-hf-bill-to"], "my-org");
    assert_eq!(auth("/org/c"), None);
    // The token is in no cache key.
    let spec = pipeline
        .nodes()
        .find(|n| n.spec().name == "explicit")
        .unwrap()
        .spec()
        .clone();
    assert!(!format!("{} {}", spec.identity, spec.params).contains("hf_explicit"));
}

// ---------- pipeline! ----------

static STAND_IN_URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn image_model() -> InferenceNode<(String,), daggr::Image> {
    InferenceNode::text_to_image("draw", "org/diffusion").router_url(STAND_IN_URL.get().unwrap())
}

#[daggr::fn_node]
fn png_size(image: daggr::Image) -> usize {
    image.bytes().len()
}

daggr::pipeline! {
    /// An inference node declared in `pipeline!` with the `[expr](sources)` form.
    struct DrawFlow {
        inputs { prompt: String = "a red square".to_string() }
        nodes {
            draw = [image_model()](prompt);
            size = png_size(image: draw);
        }
        outputs { size: usize = size }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_macro_declares_inference_nodes() {
    let r = RouterStandIn::start().await;
    STAND_IN_URL.set(r.url.clone()).unwrap();
    let (_dir, cache) = temp_cache();
    let flow = DrawFlow::build(cache).unwrap();
    let report = flow.run().await.unwrap();
    assert_eq!(*report.value(&flow.outputs.size).unwrap(), PNG_1X1.len());
    let ir = DrawFlow::graph_ir();
    assert_eq!(
        ir.nodes.iter().find(|n| n.name == "draw").unwrap().kind,
        "inference"
    );
}

/// Vision chat through the router: a generated image captioned by a vision-language
/// model. No offline server runs a vision model (no PyPI package ships one small enough:
/// see scripts/setup/llm.sh), so the exact request body is checked here against the
/// protocol stand-in, which decodes the image's data URL and echoes what it found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vision_chat_sends_the_image_as_a_data_url_part() {
    use base64::Engine as _;
    use daggr::inference::ChatMessage;
    let r = RouterStandIn::start().await;
    let (dir, cache) = temp_cache();
    const VLM: &str = "Qwen/Qwen2.5-VL-7B-Instruct";
    let b64 = base64::engine::general_purpose::STANDARD.encode(PNG_1X1);
    let data_url = format!("data:image/png;base64,{b64}");

    // text to image → vision chat (plain and streamed); a conversation with images.
    let mut g = Graph::new("caption").cache(cache);
    let draw = g.add(
        InferenceNode::text_to_image("draw", "org/diffusion").router_url(&r.url),
        (constant("a red square".to_string()),),
    );
    let question = g.input("question", "Describe this image.".to_string());
    let caption = g.add(
        InferenceNode::vision_chat("caption", &format!("{VLM}:hyperbolic"))
            .router_url(&r.url)
            .system("One sentence.")
            .temperature(0.0)
            .max_tokens(32)
            .seed(1),
        (question, draw),
    );
    let streamed = g.add(
        InferenceNode::vision_chat("streamed", VLM)
            .router_url(&r.url)
            .stream(true),
        (question, draw),
    );
    let jpeg = Image::new(vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10], "image/jpeg");
    let messages = vec![
        ChatMessage::user("Hello."),
        ChatMessage::assistant("Hi!"),
        ChatMessage::user_with_images("Which differs?", [Image::new(PNG_1X1, "image/png"), jpeg]),
    ];
    let compare = g.add(
        InferenceNode::chat_messages("compare", VLM).router_url(&r.url),
        (constant(messages),),
    );
    let pipeline = g.build().unwrap();
    let report = pipeline.run(Scope::All).await.unwrap();
    assert!(report.is_success(), "{:?}", report.errors());
    let echoed = "echo: Describe this image. [image/png, 69 bytes]";
    assert_eq!(*report.value(&caption.text).unwrap(), echoed);
    assert_eq!(
        report.value(&caption.usage).unwrap().unwrap().total_tokens,
        7
    );
    assert_eq!(
        report.value(&caption.finish_reason).unwrap().as_deref(),
        Some("stop")
    );
    assert_eq!(*report.value(&streamed.text).unwrap(), echoed);
    assert_eq!(
        *report.value(&compare.text).unwrap(),
        "echo: Which differs? [image/png, 69 bytes] [image/jpeg, 6 bytes]"
    );

    // The exact bodies: the text part, then the image as a data URL with its MIME type.
    let chats = r.requests_to("/v1/chat/completions");
    let body_of = |model: &str, stream: bool| {
        chats
            .iter()
            .map(|q| q.body.clone())
            .find(|b| b["model"] == model && b["stream"] == stream)
            .unwrap_or_else(|| panic!("no request for {model}"))
    };
    assert_eq!(
        body_of(&format!("{VLM}:hyperbolic"), false),
        json!({
            "model": format!("{VLM}:hyperbolic"),
            "messages": [
                {"role": "system", "content": "One sentence."},
                {"role": "user", "content": [
                    {"type": "text", "text": "Describe this image."},
                    {"type": "image_url", "image_url": {"url": data_url}},
                ]},
            ],
            "stream": false,
            "temperature": 0.0,
            "max_tokens": 32,
            "seed": 1,
        })
    );
    assert_eq!(
        body_of(VLM, true)["messages"][0]["content"][1]["image_url"]["url"],
        json!(data_url)
    );
    // Messages without images keep plain string content.
    let compare_body = chats
        .iter()
        .map(|q| q.body.clone())
        .find(|b| b["messages"].as_array().unwrap().len() == 3)
        .unwrap();
    assert_eq!(
        compare_body["messages"],
        json!([
            {"role": "user", "content": "Hello."},
            {"role": "assistant", "content": "Hi!"},
            {"role": "user", "content": [
                {"type": "text", "text": "Which differs?"},
                {"type": "image_url", "image_url": {"url": data_url}},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
            ]},
        ])
    );

    // The cache key holds the image by content: the same pixels, now a constant in a new
    // graph on the same cache instead of the text-to-image node's output, are served
    // from the cache; other pixels are a new request. The new graphs open new handles on
    // the directory, so the first run's queued writes must be on disk first.
    pipeline.cache().flush();
    let sent = r.requests_to("/v1/chat/completions").len();
    let caption_of = |image: Image| {
        let mut g = Graph::new("caption").cache(Cache::open(dir.path()).unwrap());
        let question = g.input("question", "Describe this image.".to_string());
        let caption = g.add(
            InferenceNode::vision_chat("caption", &format!("{VLM}:hyperbolic"))
                .router_url(&r.url)
                .system("One sentence.")
                .temperature(0.0)
                .max_tokens(32)
                .seed(1),
            (question, constant(image)),
        );
        (g.build().unwrap(), caption)
    };
    let (same, caption) = caption_of(Image::new(PNG_1X1, "image/png"));
    let again = same.run(Scope::All).await.unwrap();
    assert!(
        again.cached().contains(&"caption"),
        "{:?}",
        again.computed()
    );
    assert_eq!(*again.value(&caption.text).unwrap(), echoed);
    assert_eq!(r.requests_to("/v1/chat/completions").len(), sent);
    let mut other = PNG_1X1.to_vec();
    other.extend_from_slice(b"trailing bytes");
    let (changed, caption) = caption_of(Image::new(other, "image/png"));
    let report = changed.run(Scope::All).await.unwrap();
    assert!(report.computed().contains(&"caption"));
    assert_eq!(
        *report.value(&caption.text).unwrap(),
        "echo: Describe this image. [image/png, 83 bytes]"
    );
    assert_eq!(r.requests_to("/v1/chat/completions").len(), sent + 1);
}

/// An image too large to send inline is refused before any request, naming node and
/// port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vision_chat_refuses_an_image_too_large_to_send_inline() {
    let r = RouterStandIn::start().await;
    let (_dir, cache) = temp_cache();
    let mut g = Graph::new("caption").cache(cache);
    let mut huge = PNG_1X1.to_vec();
    huge.resize(21 * 1024 * 1024, 0);
    let caption = g.add(
        InferenceNode::vision_chat("caption", "Qwen/Qwen2.5-VL-7B-Instruct").router_url(&r.url),
        (
            constant("Describe this image.".to_string()),
            constant(Image::new(huge, "image/png")),
        ),
    );
    let report = g.build().unwrap().run(Scope::All).await.unwrap();
    let Some(Outcome::Failed(e)) = report.outcome("caption") else {
        panic!("{:?}", report.outcome("caption"))
    };
    assert_eq!(
        e.to_string(),
        "node `caption` failed: model Qwen/Qwen2.5-VL-7B-Instruct (provider auto) \
         (chat-completion not sent): input `image`: the image is 21.0 MiB, more than the \
         20 MiB an image may have when sent inline in a chat request; downscale it first"
    );
    assert!(report.value(&caption.text).is_err());
    assert!(r.requests().is_empty(), "nothing was sent");
}
