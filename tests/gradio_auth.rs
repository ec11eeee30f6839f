//! GradioNode::auth against a real Gradio app behind Gradio's own login
//! (tests/fixtures/gradio/auth_app.py, launched by the harness with
//! `auth=("daggr", "secret")`). A fault proxy in front of it records the headers of every
//! request, and stands in for redirects to another host.

mod gradio_support;

use daggr::gradio::GradioNode;
use daggr::{constant, Graph, Image, Node, Outcome, Scope};
use gradio_support::fault_proxy::{Fault, FaultProxy, Seen};
use gradio_support::{pixels, png, shared, temp_cache, upper, GradioApp, AUTH};

fn auth_app() -> String {
    shared("auth_app.py")
}

/// The error a failed node reported in `report`.
fn error_of(report: &daggr::RunReport, node: &str) -> String {
    match report.outcome(node) {
        Some(Outcome::Failed(e)) => e.to_string(),
        other => panic!("`{node}` did not fail: {other:?}"),
    }
}

fn header<'a>(seen: &'a Seen, name: &str) -> Option<&'a str> {
    seen.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn is_login(seen: &Seen) -> bool {
    seen.method == "POST" && seen.path == "/login"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_login_calls_text_and_images_with_the_session_on_every_request() {
    let proxy = FaultProxy::start(&auth_app()).await;
    let (_d, cache) = temp_cache();
    let mut g = Graph::new("auth").cache(cache.clone());
    let node = upper(&proxy.url)
        .auth(AUTH.0, AUTH.1)
        .connect()
        .await
        .unwrap();
    eprintln!("fixtures run on Gradio {}", node.gradio_version().unwrap());
    let loud = g.add(node, (constant("hello login".to_string()),));
    let inverted = g.add(
        GradioNode::new("invert", &proxy.url)
            .auth(AUTH.0, AUTH.1)
            .api("/invert")
            .input::<Image>("img")
            .output::<Image>("inverted"),
        (constant(png(4, 2, |x, y| [x as u8 * 60, y as u8 * 100, 7])),),
    );
    let user = g.add(
        GradioNode::new("whoami", &proxy.url)
            .auth(AUTH.0, AUTH.1)
            .api("/whoami")
            .output::<String>("user"),
        (),
    );
    let report = g.build().unwrap().run(Scope::All).await.unwrap();
    assert!(report.is_success(), "{:?}", report.errors());
    assert_eq!(*report.value(&loud).unwrap(), "HELLO LOGIN");
    assert_eq!(
        pixels(&report.value(&inverted).unwrap()).get_pixel(1, 1).0,
        [195, 155, 248]
    );
    assert_eq!(*report.value(&user).unwrap(), AUTH.0);

    // Every request but the login carried the session cookie; none carried the password.
    let seen = proxy.seen();
    for route in ["/login", "/config", "/info", "/upload", "/file="] {
        assert!(
            seen.iter().any(|s| s.path.contains(route)),
            "no {route} in {seen:?}"
        );
    }
    for s in &seen {
        let cookie = header(s, "cookie").unwrap_or("");
        assert!(
            is_login(s) || cookie.contains("access-token"),
            "{} {} went without the session cookie",
            s.method,
            s.path
        );
        for (k, v) in &s.headers {
            assert!(
                !v.contains(AUTH.1),
                "{} {}: header {k} carried the password",
                s.method,
                s.path
            );
        }
    }

    // The username keys the cache, the password does not: another password finds the
    // result (without connecting), another user does not.
    let key_params = |node: &GradioNode<(String,), (String,)>| node.spec().params.to_string();
    let params = key_params(&upper(&proxy.url).auth(AUTH.0, "another password"));
    assert!(params.contains(AUTH.0) && !params.contains("another password"));
    let run_upper = |node: GradioNode<(String,), (String,)>| {
        let mut g = Graph::new("auth").cache(cache.clone());
        g.add(node, (constant("hello login".to_string()),));
        async move { g.build().unwrap().run(Scope::All).await.unwrap() }
    };
    let again = run_upper(upper(&proxy.url).auth(AUTH.0, "another password")).await;
    assert!(
        matches!(again.outcome("upper"), Some(Outcome::Cached(_))),
        "{:?}",
        again.outcome("upper")
    );
    let other_user = run_upper(upper(&proxy.url).auth("someone", AUTH.1)).await;
    let err = error_of(&other_user, "upper");
    assert!(err.contains("login refused for user `someone`"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_missing_login_is_a_clear_error_without_the_password() {
    let url = auth_app();
    let (_d, cache) = temp_cache();
    let mut g = Graph::new("auth").cache(cache);
    g.add(
        upper(&url).auth(AUTH.0, "wrong-password-4711"),
        (constant("a".to_string()),),
    );
    let report = g.build().unwrap().run(Scope::All).await.unwrap();
    let err = error_of(&report, "upper");
    eprintln!("wrong password: {err}");
    assert!(
        err.contains("node `upper`")
            && err.contains(&url)
            && err.contains("HTTP 400")
            && err.contains("login refused for user `daggr`: Incorrect credentials"),
        "{err}"
    );
    assert!(!err.contains("wrong-password-4711"), "{err}");

    let err = upper(&url).connect().await.err().unwrap().to_string();
    eprintln!("no login: {err}");
    assert!(
        err.contains("node `upper`")
            && err.contains(&url)
            && err.contains("HTTP 401")
            && err.contains("the app requires a login: set .auth(user, pass)"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_without_a_login_works_with_credentials() {
    let url = shared("text_app.py");
    let (_d, cache) = temp_cache();
    let mut g = Graph::new("no-auth").cache(cache);
    let out = g.add(
        upper(&url).auth(AUTH.0, AUTH.1),
        (constant("open".to_string()),),
    );
    let report = g.build().unwrap().run(Scope::All).await.unwrap();
    assert!(report.is_success(), "{:?}", report.errors());
    assert_eq!(*report.value(&out).unwrap(), "OPEN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_logs_in_again() {
    let mut app = GradioApp::start_with_auth("auth_app.py", AUTH.0, AUTH.1);
    let proxy = FaultProxy::start(&app.url).await;
    let (_d, cache) = temp_cache();
    let mut g = Graph::new("expiry").cache(cache);
    let text = g.input("text", "before".to_string());
    let picture = g.input("picture", png(2, 2, |_, _| [1, 2, 3]));
    let loud = g.add(upper(&proxy.url).auth(AUTH.0, AUTH.1), (text,));
    let inverted = g.add(
        GradioNode::new("invert", &proxy.url)
            .auth(AUTH.0, AUTH.1)
            .api("/invert")
            .input::<Image>("img")
            .output::<Image>("inverted"),
        (picture,),
    );
    let pipeline = g.build().unwrap();
    let report = pipeline.run(Scope::All).await.unwrap();
    assert!(report.is_success(), "{:?}", report.errors());
    let logins = || proxy.seen().iter().filter(|s| is_login(s)).count();
    assert_eq!(logins(), 2, "one login per node");
    // A restarted app has forgotten every session: each node's next request (a call, an
    // upload) is refused, the node logs in again and goes on.
    app.restart();
    pipeline.set_input(&text, "after".to_string()).unwrap();
    pipeline
        .set_input(&picture, png(2, 2, |_, _| [10, 20, 30]))
        .unwrap();
    let report = pipeline.run(Scope::All).await.unwrap();
    assert!(report.is_success(), "{:?}", report.errors());
    assert_eq!(*report.value(&loud).unwrap(), "AFTER");
    assert_eq!(
        pixels(&report.value(&inverted).unwrap()).get_pixel(0, 0).0,
        [245, 235, 225]
    );
    assert_eq!(logins(), 4, "one more login per node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neither_password_nor_cookie_follows_a_redirect_to_another_host() {
    let url = auth_app();
    // `elsewhere` is another host (another port) in front of the same app: it records
    // what reaches it.
    let elsewhere = FaultProxy::start(&url).await;
    let proxy = FaultProxy::start(&url).await;
    proxy.inject(Fault::Redirect {
        path: "/login".into(),
        status: 307,
        to: elsewhere.url.clone(),
    });
    let err = upper(&proxy.url)
        .auth(AUTH.0, AUTH.1)
        .connect()
        .await
        .err()
        .unwrap()
        .to_string();
    eprintln!("login redirected: {err}");
    assert!(
        err.contains("node `upper`") && err.contains("the login was redirected to another host"),
        "{err}"
    );
    assert!(!err.contains(AUTH.1), "{err}");
    assert!(elsewhere.seen().is_empty(), "{:?}", elsewhere.seen());

    // A download redirected to another host goes there without the session cookie.
    proxy.clear();
    proxy.inject(Fault::Redirect {
        path: "/file=".into(),
        status: 302,
        to: elsewhere.url.clone(),
    });
    let (_d, cache) = temp_cache();
    let mut g = Graph::new("redirect").cache(cache);
    g.add(
        GradioNode::new("invert", &proxy.url)
            .auth(AUTH.0, AUTH.1)
            .api("/invert")
            .input::<Image>("img")
            .output::<Image>("inverted"),
        (constant(png(2, 2, |_, _| [9, 9, 9])),),
    );
    let report = g.build().unwrap().run(Scope::All).await.unwrap();
    let err = error_of(&report, "invert");
    eprintln!("download redirected: {err}");
    assert!(!err.contains(AUTH.1), "{err}");
    let there = elsewhere.seen();
    assert!(
        !there.is_empty(),
        "the download never reached the other host"
    );
    for s in &there {
        assert_eq!(header(s, "cookie"), None, "{} {}", s.method, s.path);
    }
}
