//! The fault proxy: a small HTTP proxy of the tests' own, in front of a real Gradio app,
//! that forwards every request unchanged except when told to inject a fault: an error
//! status (a 500 with a plain-text body, a 429 with Retry-After), a redirect, an event
//! stream cut after some events, or a stream that goes silent. It also records the headers it saw.
//! It is the only stand-in in these tests; everything behind it is real Gradio.

use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use futures::StreamExt;

/// A fault to inject into requests whose path contains `path`.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer `status` with `body` (and `Retry-After`, if set), `times` times.
    Status {
        path: String,
        status: u16,
        body: String,
        retry_after: Option<String>,
        times: usize,
    },
    /// Forward the event stream, but cut the connection after `after_events` events.
    CutStream { path: String, after_events: usize },
    /// Answer 200 `text/event-stream` and then send nothing, ever.
    Silent { path: String },
    /// Answer `status` (a 3xx) with `Location: {to}{the request's path and query}`.
    Redirect {
        path: String,
        status: u16,
        to: String,
    },
}

impl Fault {
    fn path(&self) -> &str {
        match self {
            Fault::Status { path, .. }
            | Fault::CutStream { path, .. }
            | Fault::Silent { path }
            | Fault::Redirect { path, .. } => path,
        }
    }
}

/// What the proxy saw of one request.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

struct ProxyState {
    upstream: String,
    http: reqwest::Client,
    faults: Mutex<Vec<Fault>>,
    seen: Mutex<Vec<Seen>>,
}

/// A running fault proxy; stops when dropped.
pub struct FaultProxy {
    pub url: String,
    state: Arc<ProxyState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// A proxy on a free loopback port forwarding to `upstream`.
    pub async fn start(upstream: &str) -> FaultProxy {
        let state = Arc::new(ProxyState {
            upstream: upstream.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            faults: Mutex::new(Vec::new()),
            seen: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FaultProxy { url, state, task }
    }

    /// Adds a fault (faults apply in the order added).
    pub fn inject(&self, fault: Fault) {
        self.state.faults.lock().unwrap().push(fault);
    }

    /// Removes every fault.
    pub fn clear(&self) {
        self.state.faults.lock().unwrap().clear();
    }

    /// The requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }
}

async fn forward(State(state): State<Arc<ProxyState>>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    state.seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        path: path.clone(),
        headers: request
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
    });
    let fault = {
        let mut faults = state.faults.lock().unwrap();
        let index = faults.iter().position(|f| path.contains(f.path()));
        match index {
            Some(i) => {
                let f = faults[i].clone();
                if let Fault::Status { times, .. } = &mut faults[i] {
                    *times -= 1;
                    if *times == 0 {
                        faults.remove(i);
                    }
                }
                Some(f)
            }
            None => None,
        }
    };
    match &fault {
        Some(Fault::Status {
            status,
            body,
            retry_after,
            ..
        }) => {
            let mut r = Response::new(Body::from(body.clone()));
            *r.status_mut() = StatusCode::from_u16(*status).unwrap();
            r.headers_mut().insert(
                "content-type",
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            if let Some(ra) = retry_after {
                r.headers_mut()
                    .insert("retry-after", HeaderValue::from_str(ra).unwrap());
            }
            return r;
        }
        Some(Fault::Redirect { status, to, .. }) => {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::from_u16(*status).unwrap();
            r.headers_mut().insert(
                "location",
                HeaderValue::from_str(&format!("{to}{path}")).unwrap(),
            );
            return r;
        }
        Some(Fault::Silent { .. }) => {
            let mut r = Response::new(Body::from_stream(futures::stream::pending::<
                Result<Bytes, std::io::Error>,
            >()));
            r.headers_mut().insert(
                "content-type",
                HeaderValue::from_static("text/event-stream"),
            );
            return r;
        }
        _ => {}
    }
    let headers: HeaderMap = request.headers().clone();
    let body = axum::body::to_bytes(request.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let mut upstream = state
        .http
        .request(method, format!("{}{path}", state.upstream))
        .body(body);
    for (k, v) in headers.iter() {
        if k != "host" && k != "content-length" {
            upstream = upstream.header(k, v);
        }
    }
    let answer = match upstream.send().await {
        Ok(a) => a,
        Err(e) => {
            let mut r = Response::new(Body::from(format!(
                "fault proxy: upstream unreachable: {e}"
            )));
            *r.status_mut() = StatusCode::BAD_GATEWAY;
            return r;
        }
    };
    let mut response = Response::builder().status(answer.status().as_u16());
    for (k, v) in answer.headers() {
        if k != "content-length" && k != "transfer-encoding" {
            response = response.header(k, v);
        }
    }
    let stream = answer.bytes_stream();
    let body = match fault {
        Some(Fault::CutStream { after_events, .. }) => {
            let mut seen = 0usize;
            let mut done = false;
            Body::from_stream(stream.map(move |chunk| {
                if done {
                    return Err(std::io::Error::other("fault proxy: stream cut"));
                }
                let chunk = chunk.map_err(std::io::Error::other)?;
                seen += chunk.windows(2).filter(|w| w == b"\n\n").count();
                if seen >= after_events {
                    done = true;
                }
                Ok(chunk)
            }))
        }
        _ => Body::from_stream(stream),
    };
    response.body(body).unwrap()
}
