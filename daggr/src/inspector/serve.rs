//! The serving half of the serve handshake (`cargo daggr serve`, a deployed Space): when
//! `DAGGR_SERVE` is set, `Graph::build` hands the pipeline it built to [`serve`], which it
//! finds through the executor's `SERVE_HOOKS` (a layer below never names this one). It
//! serves the workflow API, and the inspector unless API-only, until Ctrl-C or SIGTERM (what
//! a container is stopped with).

use linkme::distributed_slice;

use super::{Inspector, LaunchOptions};
use crate::exec::{ServeHook, ServeRequest, SERVE_HOOKS};
use crate::{Error, Pipeline};

#[distributed_slice(SERVE_HOOKS)]
static SERVE: ServeHook = serve;

/// Serves `pipeline` as `request` asks, on a runtime of its own, until the process is told
/// to stop.
fn serve(pipeline: &Pipeline, request: &ServeRequest) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            context: "starting the server's runtime".into(),
            source,
        })?;
    runtime.block_on(async {
        let options = LaunchOptions {
            host: Some(request.addr.ip()),
            port: Some(request.addr.port()),
            open_browser: false,
            token: request.token.clone(),
            api_only: request.api_only,
            ..LaunchOptions::default()
        };
        let inspector = Inspector::bind(pipeline, options).await?;
        let addr = inspector.local_addr();
        // The URL a client on this machine uses (an unspecified address is reached on
        // loopback). The token is the caller's: it is not printed.
        let host = match addr.ip() {
            ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_string(),
            ip if ip.is_unspecified() => "[::1]".to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        let url = format!("http://{host}:{}", addr.port());
        println!(
            "daggr: serving `{}` on {url} (bound to {addr}; Ctrl-C to stop)",
            pipeline.name()
        );
        println!("  workflow API: POST {url}/api/call, GET {url}/api/openapi.json");
        if !request.api_only {
            println!("  inspector:    {url}/");
        }
        if request.token.is_some() {
            println!("  a token is required: send it as the X-Daggr-Token header (or ?token=…)");
        }
        inspector.serve(stopped()).await?;
        println!("daggr: stopped serving `{}`", pipeline.name());
        Ok(())
    })
}

/// Completes on Ctrl-C, or on SIGTERM on Unix.
async fn stopped() {
    let interrupted = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let terminated = async {
            match signal(SignalKind::terminate()) {
                Ok(mut stream) => {
                    stream.recv().await;
                }
                // No handler could be installed: only Ctrl-C stops the server.
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = interrupted => {}
            _ = terminated => {}
        }
    }
    #[cfg(not(unix))]
    interrupted.await;
}
