//! [`GradioNode`]: a typed node calling one endpoint of a Gradio app.

use std::any::TypeId;
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{json, Value as Json};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use super::client::{ClientOptions, GradioClient, Login, Protocol, Reused, Update};
use super::local::{self, LocalApp, LocalSettings, LocalSource};
use super::space::{self, Target};
use super::ReturnInfo;
use crate::error::{suggest, BoxError};
use crate::graph::{ArgTuple, Output, TypedNode};
use crate::kinds::hf::HfToken;
use crate::kinds::http::client as http_client;
use crate::node::{Configure, Inputs, Node, NodeConfig, NodeContext, NodeSpec, PortSpec};
use crate::value::media::{
    extension_for, guess_mime, sniff_mime, Audio, BlobSet, File, Image, Video,
};
use crate::value::{PortType, PortValue, Value};
use crate::Error;

/// Appends a type to a tuple type: `(A,)` + `T` = `(A, T)`. The type-state behind
/// [`GradioNode::input`] and [`GradioNode::output`] (up to eight ports each).
pub trait Append<T> {
    /// The longer tuple.
    type Output;
}

/// The output types of a [`GradioNode`], as a tuple, and the handles [`crate::Graph::add`]
/// returns for them: an [`Output<T>`] for one output, a tuple of them for several.
pub trait OutputTuple: Send + 'static {
    /// The typed handles.
    type Handles;
    /// The handles of the node added at `node`.
    fn handles(node: usize) -> Self::Handles;
}

impl<T> Append<T> for () {
    type Output = (T,);
}

impl OutputTuple for () {
    type Handles = ();
    fn handles(_node: usize) {}
}

impl<A: PortValue> OutputTuple for (A,) {
    type Handles = Output<A>;
    fn handles(node: usize) -> Output<A> {
        Output::new(node, 0)
    }
}

macro_rules! tuples {
    ($( ($($A:ident $i:tt),*) )*) => {$(
        impl<$($A,)* T> Append<T> for ($($A,)*) {
            type Output = ($($A,)* T,);
        }
    )*};
}

tuples! {
    (A0 0)
    (A0 0, A1 1)
    (A0 0, A1 1, A2 2)
    (A0 0, A1 1, A2 2, A3 3)
    (A0 0, A1 1, A2 2, A3 3, A4 4)
    (A0 0, A1 1, A2 2, A3 3, A4 4, A5 5)
    (A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6)
}

macro_rules! output_tuples {
    ($( ($($A:ident $i:tt),*) )*) => {$(
        impl<$($A: PortValue),*> OutputTuple for ($($A,)*) {
            type Handles = ($(Output<$A>,)*);
            fn handles(node: usize) -> Self::Handles {
                ($(Output::new(node, $i),)*)
            }
        }
    )*};
}

output_tuples! {
    (A0 0, A1 1)
    (A0 0, A1 1, A2 2)
    (A0 0, A1 1, A2 2, A3 3)
    (A0 0, A1 1, A2 2, A3 3, A4 4)
    (A0 0, A1 1, A2 2, A3 3, A4 4, A5 5)
    (A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6)
    (A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6, A7 7)
}

/// Which media type a port carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Media {
    Image,
    Audio,
    Video,
    File,
}

/// How a port's values map to Gradio's JSON: plain JSON, or files (one, optional, a list).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Json,
    One(Media),
    Optional(Media),
    Many(Media),
}

impl Kind {
    fn of<T: 'static>() -> Kind {
        let t = TypeId::of::<T>();
        macro_rules! check {
            ($($ty:ident),*) => {$(
                if t == TypeId::of::<$ty>() { return Kind::One(Media::$ty); }
                if t == TypeId::of::<Option<$ty>>() { return Kind::Optional(Media::$ty); }
                if t == TypeId::of::<Vec<$ty>>() { return Kind::Many(Media::$ty); }
            )*};
        }
        check!(Image, Audio, Video, File);
        Kind::Json
    }

    fn is_file(self) -> bool {
        self != Kind::Json
    }
}

/// What a plain (non-file) port's Rust type is, as far as `/info`'s component types can
/// tell it apart: preflight compares the two, so a `String` wired to a Number parameter
/// fails before any run instead of inside the app.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Number,
    Text,
    Bool,
    /// Media (checked by [`Kind`]) or any serde type: any component may carry it.
    Any,
}

impl Shape {
    fn of<T: 'static>() -> Shape {
        let t = TypeId::of::<T>();
        macro_rules! any_of {
            ($($ty:ty),*) => { false $(|| t == TypeId::of::<$ty>() || t == TypeId::of::<Option<$ty>>())* };
        }
        if any_of!(f64, f32, i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize) {
            Shape::Number
        } else if any_of!(String) {
            Shape::Text
        } else if any_of!(bool) {
            Shape::Bool
        } else {
            Shape::Any
        }
    }

    /// What a component (or, failing that, its JSON schema) carries; `Any` when it is
    /// JSON, a file, or something this check does not know.
    fn of_component(component: &str, schema: &Json) -> Shape {
        match component.to_ascii_lowercase().as_str() {
            "number" | "slider" => return Shape::Number,
            "textbox" | "textarea" => return Shape::Text,
            "checkbox" => return Shape::Bool,
            "json" => return Shape::Any,
            _ => {}
        }
        match schema.get("type").and_then(Json::as_str) {
            Some("number" | "integer") => Shape::Number,
            Some("string") => Shape::Text,
            Some("boolean") => Shape::Bool,
            _ => Shape::Any,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Shape::Number => "a number",
            Shape::Text => "text",
            Shape::Bool => "a bool",
            Shape::Any => "any value",
        }
    }

    /// The Rust types that fit a component of this shape, for the error.
    fn rust_types(self) -> &'static str {
        match self {
            Shape::Number => "f64, f32 or an integer type",
            Shape::Text => "String",
            Shape::Bool => "bool",
            Shape::Any => "any type",
        }
    }

    fn fits(self, other: Shape) -> bool {
        self == Shape::Any || other == Shape::Any || self == other
    }
}

/// `alloc::string::String` as `String`, `core::option::Option<f64>` as `Option<f64>`.
fn short_type_name(full: &str) -> String {
    let mut out = String::with_capacity(full.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        out.push_str(word.rsplit("::").next().unwrap_or(word));
        word.clear();
    };
    for c in full.chars() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// Bytes, MIME type and name of any media value.
struct MediaParts {
    bytes: Vec<u8>,
    mime: String,
    name: Option<String>,
    integrity: String,
}

macro_rules! parts_of {
    ($m:expr) => {
        MediaParts {
            bytes: $m.bytes().to_vec(),
            mime: $m.mime().to_string(),
            name: $m.name().map(str::to_string),
            integrity: $m.integrity(),
        }
    };
}

fn media_parts(value: &Value, media: Media, kind: Kind) -> Option<Vec<MediaParts>> {
    macro_rules! get {
        ($ty:ident) => {
            match kind {
                Kind::One(_) => value.downcast_ref::<$ty>().map(|m| vec![parts_of!(m)]),
                Kind::Optional(_) => value
                    .downcast_ref::<Option<$ty>>()
                    .map(|m| m.iter().map(|m| parts_of!(m)).collect()),
                Kind::Many(_) => value
                    .downcast_ref::<Vec<$ty>>()
                    .map(|m| m.iter().map(|m| parts_of!(m)).collect()),
                Kind::Json => None,
            }
        };
    }
    match media {
        Media::Image => get!(Image),
        Media::Audio => get!(Audio),
        Media::Video => get!(Video),
        Media::File => get!(File),
    }
}

fn make_value(
    media: Media,
    kind: Kind,
    files: Vec<MediaParts>,
) -> Result<Value, serde_json::Error> {
    macro_rules! build {
        ($ty:ident) => {{
            let mut items = files.into_iter().map(|p| match p.name {
                Some(n) => $ty::named(p.bytes, p.mime, n),
                None => $ty::new(p.bytes, p.mime),
            });
            match kind {
                Kind::One(_) => Value::new(items.next().expect("one file")),
                Kind::Optional(_) => Value::new(items.next()),
                _ => Value::new(items.collect::<Vec<$ty>>()),
            }
        }};
    }
    match media {
        Media::Image => build!(Image),
        Media::Audio => build!(Audio),
        Media::Video => build!(Video),
        Media::File => build!(File),
    }
}

/// The client for the Hub's Space API: the caller's if given (the token goes in
/// `Authorization` there, which reqwest drops when a redirect leaves the host), else
/// daggr's shared one.
fn hub_client(options: &ClientOptions) -> Result<reqwest::Client, http_client::ClientError> {
    match &options.http_client {
        Some(c) => Ok(c.clone()),
        None => http_client::shared(),
    }
}

fn default_name(mime: &str) -> String {
    let kind = mime.split_once('/').map_or("file", |(kind, _)| kind);
    let ext = extension_for(mime).unwrap_or("bin");
    let stem = if matches!(kind, "image" | "audio" | "video") {
        kind
    } else {
        "file"
    };
    format!("{stem}.{ext}")
}

/// One declared port.
#[derive(Clone, Debug)]
struct PortDecl {
    name: String,
    kind: Kind,
    shape: Shape,
    /// The Rust type without module paths (`Option<f64>`), for errors.
    type_name: String,
}

impl PortDecl {
    /// A port named `name` carrying a `T`.
    fn of<T: PortValue>(name: &str) -> PortDecl {
        PortDecl {
            name: name.to_string(),
            kind: Kind::of::<T>(),
            shape: Shape::of::<T>(),
            type_name: short_type_name(std::any::type_name::<T>()),
        }
    }
}

/// Everything a call needs; part of it is the cache key.
#[derive(Clone)]
pub(crate) struct Settings {
    node: String,
    target: Result<Target, String>,
    api: String,
    inputs: Vec<PortDecl>,
    outputs: Vec<PortDecl>,
    /// For each declared output, its position among the endpoint's returns.
    positions: Vec<usize>,
    next_return: usize,
    fixed: BTreeMap<String, Json>,
    token: Option<HfToken>,
    auth: Option<Login>,
    hub: String,
    revision: Option<String>,
    options: ClientOptions,
    validate: bool,
    local: Option<LocalSettings>,
    space_wait: Duration,
}

/// The node's connection: made by its first run, its preflight or
/// [`GradioNode::connect`], then shared by every run, and made again when the code of its
/// `run_locally` app changed (a running Python app does not reload its code).
#[derive(Default)]
struct ConnSlot {
    current: std::sync::Mutex<Option<Arc<Connection>>>,
    /// Held while connecting, so that concurrent runs connect once.
    connecting: tokio::sync::Mutex<()>,
    /// The local code's revision the node's last cache key was made with
    /// ([`Node::runtime_fingerprint`]); the run that follows makes sure the app it calls
    /// runs that code.
    keyed: std::sync::Mutex<Option<String>>,
}

impl ConnSlot {
    fn get(&self) -> Option<Arc<Connection>> {
        self.current.lock().unwrap().clone()
    }

    fn with(conn: Connection) -> ConnSlot {
        let slot = ConnSlot::default();
        *slot.current.lock().unwrap() = Some(Arc::new(conn));
        slot
    }
}

/// What connecting establishes.
struct Connection {
    client: GradioClient,
    /// What errors call the app: the Space or URL, and the URL it answers at.
    service: String,
    /// One entry per endpoint parameter, in call order.
    plan: Vec<Arg>,
    revision: Option<String>,
    /// Keeps a `run_locally` app alive as long as the node.
    local: Option<Arc<LocalApp>>,
}

impl Connection {
    /// This connection with another client of the same app (a newer description of
    /// it): the node's ports are checked and its arguments ordered again.
    fn with_client(&self, s: &Settings, client: GradioClient) -> Result<Connection, Error> {
        let plan = plan(s, &client, &self.service)?;
        Ok(Connection {
            client,
            service: self.service.clone(),
            plan,
            revision: self.revision.clone(),
            local: self.local.clone(),
        })
    }
}

#[derive(Clone, Debug)]
enum Arg {
    /// The node's input port `usize`, shaped for the parameter's component.
    Input(usize, Wrap),
    Fixed(Json),
    Default(Json),
}

/// How an uploaded file is shaped for the component that receives it: most take the
/// FileData itself, but a Video takes `{"video": FileData, "subtitles": null}` and a
/// Gallery a list of `{"image" | "video": FileData, "caption": null}` (their data models
/// in Gradio 4 to 6; a bare FileData fails their validation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wrap {
    Plain,
    Video,
    Gallery,
}

impl Wrap {
    fn for_component(component: &str) -> Wrap {
        match component.to_ascii_lowercase().as_str() {
            "video" => Wrap::Video,
            "gallery" => Wrap::Gallery,
            _ => Wrap::Plain,
        }
    }

    /// Shapes one uploaded FileData (`mime` is its file's type).
    fn apply(self, file: Json, mime: &str) -> Json {
        match self {
            Wrap::Plain => file,
            Wrap::Video => json!({"video": file, "subtitles": null}),
            Wrap::Gallery if mime.starts_with("video/") => json!({"video": file, "caption": null}),
            Wrap::Gallery => json!({"image": file, "caption": null}),
        }
    }
}

/// A node calling one endpoint of a Gradio app: a Hugging Face Space (`owner/name`) or
/// any URL. Its ports are declared with their Rust types, so the compiler checks the
/// wiring like any other node's:
///
/// ```no_run
/// use daggr::{constant, Configure, Graph, GradioNode, Image};
/// # use std::time::Duration;
/// let mut g = Graph::new("flow");
/// let prompt = g.input("prompt", "a watercolor fox".to_string());
/// let image = g.add(
///     GradioNode::new("generate", "hf-applications/Z-Image-Turbo")
///         .api("/generate_image")
///         .input::<String>("prompt")
///         .input::<f64>("seed")
///         .param("width", serde_json::json!(512))
///         .output::<Image>("image")
///         .timeout(Duration::from_secs(300)),
///     (prompt, constant(42.0)),
/// );
/// let (original, cutout) = g.add(
///     GradioNode::new("cutout", "hf-applications/background-removal")
///         .api("/image")
///         .input::<Image>("image")
///         .output::<Image>("original")
///         .output::<Image>("cutout"),
///     (image,),
/// );
/// # let _ = (original, cutout);
/// ```
///
/// * Inputs are named by the endpoint's parameter names (`/info`'s `parameter_name`);
///   parameters that are not inputs get their [`GradioNode::param`] value or their
///   default. Outputs map to the endpoint's return values by position
///   ([`GradioNode::skip_output`] skips one).
/// * Port types: strings, numbers, bools and any serde type travel as JSON;
///   [`Image`], [`Audio`], [`Video`] and [`File`] (also `Option<…>` and `Vec<…>` of
///   them) are uploaded as FileData and downloaded into the content-addressed store.
/// * Endpoint and parameter names are checked against the app's `/info` on the first run
///   (or when [`GradioNode::connect`] or [`crate::Pipeline::preflight`] is awaited), with
///   "did you mean"; so are the number of outputs and each port's Rust type against its
///   component (Number and Slider take numbers, Textbox `String`, Checkbox `bool`, file
///   components media types, JSON anything), every problem in one error.
/// * The cache key holds the Space (or URL), the endpoint, the fixed parameters, the
///   inputs by content, and the Space's revision: pinned with [`GradioNode::revision`],
///   learnt by [`GradioNode::connect`] (from the Hub or a `run_locally` clone), or else
///   asked of the Hub before the node's first cache look-up (offline: the last revision
///   the Hub gave, remembered on disk). A URL has no revision. A node running locally
///   from a directory or git URL ([`GradioNode::run_locally_from`]) is keyed by its code
///   as it is at each run (commit and uncommitted changes, or a hash of the files).
///   With [`GradioNode::auth`], the username too (never the password).
/// * Errors are [`Error::Remote`], naming the node, the Space, the endpoint and the
///   server's own message. Cancelling the run cancels the remote job.
pub struct GradioNode<Args = (), Outs = ()> {
    spec: NodeSpec,
    settings: Arc<Settings>,
    conn: Arc<ConnSlot>,
    /// The Space's commit as the Hub gave it, for the key of a node without a pinned revision.
    hub_revision: Arc<OnceCell<String>>,
    _types: PhantomData<fn(Args) -> Outs>,
}

impl GradioNode<(), ()> {
    /// A node named `name` calling the app at `src`: a Space id (`owner/name`) or an
    /// `http(s)://` URL. The endpoint is `/predict` unless set with [`GradioNode::api`].
    pub fn new(name: &str, src: &str) -> Self {
        let settings = Settings {
            node: name.to_string(),
            target: Target::parse(src),
            api: "/predict".into(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            positions: Vec::new(),
            next_return: 0,
            fixed: BTreeMap::new(),
            token: HfToken::from_env(),
            auth: None,
            hub: space::default_hub(),
            revision: None,
            options: ClientOptions::default(),
            validate: true,
            local: None,
            space_wait: Duration::from_secs(300),
        };
        let mut node = GradioNode {
            spec: NodeSpec {
                name: name.to_string(),
                kind: "gradio",
                identity: String::new(),
                code_fingerprint: String::new(),
                params: Json::Null,
                inputs: Vec::new(),
                outputs: Vec::new(),
                config: NodeConfig::default(),
            },
            settings: Arc::new(settings),
            conn: Arc::default(),
            hub_revision: Arc::new(OnceCell::new()),
            _types: PhantomData,
        };
        node.refresh();
        node
    }
}

impl<Args, Outs> GradioNode<Args, Outs> {
    fn refresh(&mut self) {
        let s = &self.settings;
        let target = match &s.target {
            Ok(t) => t.key().to_string(),
            Err(_) => "invalid".to_string(),
        };
        self.spec.identity = format!("{target}:{}", s.api);
        self.spec.params = json!({
            "fixed": s.fixed,
            "outputs": s.positions,
        });
        // The user an app serves may change what it answers (`gr.Request.username`), so
        // it keys the cache; the password never does (changing it changes no result).
        // Only set with a login, so the keys of other nodes stay as they were.
        if let Some(login) = &s.auth {
            self.spec.params["user"] = json!(login.username());
        }
        self.spec.code_fingerprint = s
            .revision
            .as_ref()
            .map(|r| format!("revision:{r}"))
            .unwrap_or_default();
        // A changed node needs a new connection (and a new validation).
        self.conn = Arc::default();
        self.hub_revision = Arc::new(OnceCell::new());
    }

    fn with(mut self, f: impl FnOnce(&mut Settings)) -> Self {
        f(Arc::make_mut(&mut self.settings));
        self.refresh();
        self
    }

    fn retype<A2, O2>(self) -> GradioNode<A2, O2> {
        GradioNode {
            spec: self.spec,
            settings: self.settings,
            conn: self.conn,
            hub_revision: self.hub_revision,
            _types: PhantomData,
        }
    }

    /// Declares the next input: the endpoint parameter `name`, carrying a `T`.
    pub fn input<T: PortValue>(
        mut self,
        name: &str,
    ) -> GradioNode<<Args as Append<T>>::Output, Outs>
    where
        Args: Append<T>,
    {
        self.spec.inputs.push(PortSpec::new::<T>(name));
        self.with(|s| s.inputs.push(PortDecl::of::<T>(name)))
            .retype()
    }

    /// Declares the next output, named `name`, carrying a `T`: the endpoint's next
    /// return value.
    pub fn output<T: PortValue>(
        mut self,
        name: &str,
    ) -> GradioNode<Args, <Outs as Append<T>>::Output>
    where
        Outs: Append<T>,
    {
        self.spec.outputs.push(PortSpec::new::<T>(name));
        self.with(|s| {
            s.outputs.push(PortDecl::of::<T>(name));
            s.positions.push(s.next_return);
            s.next_return += 1;
        })
        .retype()
    }

    /// Skips the endpoint's next return value (it gets no port).
    pub fn skip_output(self) -> Self {
        self.with(|s| s.next_return += 1)
    }

    /// The endpoint, e.g. `/predict` (the leading slash is optional).
    pub fn api(self, api: &str) -> Self {
        let api = format!("/{}", api.trim_start_matches('/'));
        self.with(|s| s.api = api)
    }

    /// A fixed value for parameter `name` (not a port; part of the cache key).
    pub fn param(self, name: &str, value: Json) -> Self {
        let name = name.to_string();
        self.with(|s| {
            s.fixed.insert(name, value);
        })
    }

    /// The token for private Spaces (default: `HF_TOKEN` or the Hugging Face CLI's token
    /// file). It is sent only to Hugging Face hosts, never elsewhere, and never logged.
    pub fn token(self, token: HfToken) -> Self {
        self.with(|s| s.token = Some(token))
    }

    /// Logs in to an app launched with Gradio's own login (`launch(auth=(user,
    /// password))`), as `gradio_client.Client(src, auth=(user, password))` does: the
    /// node posts the credentials to the app's `/login` before reading `/config`, sends
    /// the session cookies with every request to that app (uploads, calls, event
    /// streams, downloads, cancellation), and logs in again once when a request is
    /// refused with 401 or 403 (the app restarted and forgot the session).
    ///
    /// ```no_run
    /// use daggr::GradioNode;
    /// let password = std::env::var("APP_PASSWORD").unwrap_or_default();
    /// let node = GradioNode::new("upper", "http://127.0.0.1:7860")
    ///     .auth("daggr", &password)
    ///     .api("/upper")
    ///     .input::<String>("text")
    ///     .output::<String>("upper");
    /// # let _ = node;
    /// ```
    ///
    /// The username is part of the cache key (an app may answer each user differently);
    /// the password is not, is never logged nor shown in errors or `Debug`, and goes
    /// only to the app's own `/login` (not to the Hub, and not on a redirect). Wrong
    /// credentials fail the node with "login refused"; an app without a login works as
    /// before (a debug-level note says it had none).
    pub fn auth(self, username: &str, password: &str) -> Self {
        let login = Login::new(username, password);
        self.with(|s| s.auth = Some(login))
    }

    /// Sends no token at all.
    pub fn without_token(self) -> Self {
        self.with(|s| s.token = None)
    }

    /// The Hub that resolves Space ids (default `$HF_ENDPOINT` or `https://huggingface.co`).
    pub fn hub(self, url: &str) -> Self {
        let url = url.trim_end_matches('/').to_string();
        self.with(|s| s.hub = url)
    }

    /// Pins the app's revision (a commit of the Space), part of the cache key.
    pub fn revision(self, revision: &str) -> Self {
        let revision = revision.to_string();
        self.with(|s| s.revision = Some(revision))
    }

    /// The route calls take (default [`Protocol::Auto`]).
    pub fn protocol(self, protocol: Protocol) -> Self {
        self.with(|s| s.options.protocol = protocol)
    }

    /// The longest silence tolerated on a result stream (default 60 s; Gradio sends
    /// heartbeats every 15 s). The whole call's limit is [`Configure::timeout`].
    pub fn read_timeout(self, timeout: Duration) -> Self {
        self.with(|s| s.options.read_timeout = timeout)
    }

    /// Timeout of plain requests: config, info, uploads, downloads (default 300 s).
    pub fn request_timeout(self, timeout: Duration) -> Self {
        self.with(|s| s.options.request_timeout = timeout)
    }

    /// Retries of requests that fail to connect or answer 5xx/429, with exponential
    /// backoff from `backoff` (default 3 retries from 500 ms). An accepted job is never
    /// resubmitted by the client; use [`Configure::retry`] for that.
    pub fn retries(self, retries: u32, backoff: Duration) -> Self {
        self.with(|s| {
            s.options.retries = retries;
            s.options.backoff = backoff;
        })
    }

    /// Sends the node's requests through `client`, one of your own (a proxy, a custom CA),
    /// instead of the one daggr builds. Its timeouts and redirect policy are its own,
    /// except where a redirect could carry a secret off: requests that carry the HF token
    /// to a Hugging Face host (a Space reads it from `X-HF-Authorization`, which reqwest
    /// does not drop on a redirect to another host) and the login of
    /// [`GradioNode::auth`] go through daggr's own client, which checks every redirect.
    /// The Hub's Space API and the app's other routes use `client`.
    ///
    /// ```no_run
    /// use daggr::GradioNode;
    /// let client = reqwest::Client::builder()
    ///     .proxy(reqwest::Proxy::all("http://proxy.internal:3128").unwrap())
    ///     .build()
    ///     .unwrap();
    /// let node = GradioNode::new("upper", "http://127.0.0.1:7860")
    ///     .api("/upper")
    ///     .http_client(client);
    /// # let _ = node;
    /// ```
    pub fn http_client(self, client: reqwest::Client) -> Self {
        self.with(|s| s.options.http_client = Some(client))
    }

    /// Whether to check the endpoint and parameter names against `/info` (default true).
    pub fn validate(self, on: bool) -> Self {
        self.with(|s| s.validate = on)
    }

    /// How long to wait for a Space that is building or starting (default 300 s).
    pub fn space_wait(self, wait: Duration) -> Self {
        self.with(|s| s.space_wait = wait)
    }

    /// Runs the Space on this machine: clones its repository, installs
    /// `gradio==<sdk_version>` and its `requirements.txt` in a venv, launches it on a free
    /// loopback port and calls it there (see [`crate::kinds::gradio`] for the details). If a step
    /// fails, the node falls back to the remote Space with a warning, unless
    /// [`GradioNode::local_fallback`] is off.
    pub fn run_locally(self) -> Self {
        self.with(|s| {
            let mut local = s.local.take().unwrap_or_default();
            local.source = LocalSource::Space;
            s.local = Some(local);
        })
    }

    /// Like [`GradioNode::run_locally`], from a local directory or a git URL instead of
    /// the Space's own repository.
    ///
    /// The cache key carries the code as it is at each run, however the node connects
    /// (lazily, by preflight, by [`GradioNode::connect`]) and whatever revision is pinned:
    /// in a git work tree, the commit and a hash of the uncommitted changes and untracked
    /// files; in a plain directory, a hash of its files (venvs, `.git`, logs and caches
    /// left out); for a git URL, the commit its `HEAD` names. Edit the app between two
    /// runs and the second is computed by the edited app, started again for it.
    pub fn run_locally_from(self, repo: &str) -> Self {
        let source = LocalSource::parse(repo);
        self.with(|s| {
            let mut local = s.local.take().unwrap_or_default();
            local.source = source;
            s.local = Some(local);
        })
    }

    /// Whether a failed local start falls back to the remote Space (default true; the
    /// environment variable `DAGGR_LOCAL_NO_FALLBACK=1` turns it off too).
    pub fn local_fallback(self, on: bool) -> Self {
        self.with(|s| s.local.get_or_insert_with(LocalSettings::default).fallback = on)
    }

    /// How long a local app may take to answer after launch (default
    /// `$DAGGR_LOCAL_TIMEOUT` seconds, else 120 s).
    pub fn local_timeout(self, timeout: Duration) -> Self {
        self.with(|s| s.local.get_or_insert_with(LocalSettings::default).timeout = timeout)
    }

    /// Where local clones, venvs and logs live (default `$DAGGR_SPACES_DIR`, else
    /// `~/.cache/daggr/spaces`).
    pub fn local_dir(self, dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        self.with(|s| s.local.get_or_insert_with(LocalSettings::default).dir = Some(dir))
    }

    /// The Python that creates the local venv, a name on PATH or a path. By default it
    /// is chosen by the `python_version` of the Space's README: `python3.10` for
    /// `"3.10"` (or `"3.10.13"`), else `python3` if it has that major.minor, else
    /// `python3` with a warning naming both versions. A Python named here is used as
    /// given (with a warning if its version differs); a venv made by another version is
    /// made anew.
    ///
    /// ```no_run
    /// use daggr::GradioNode;
    /// let node = GradioNode::new("caption", "owner/space")
    ///     .api("/predict")
    ///     .input::<String>("text")
    ///     .output::<String>("caption")
    ///     .run_locally()
    ///     .local_python("/opt/python3.10/bin/python3.10");
    /// # let _ = node;
    /// ```
    pub fn local_python(self, python: impl Into<PathBuf>) -> Self {
        let python = python.into();
        self.with(|s| s.local.get_or_insert_with(LocalSettings::default).python = Some(python))
    }

    /// Extra arguments for the local venv's `pip install` (a mirror's `--index-url`, or
    /// `--no-index --find-links DIR` for an offline wheelhouse).
    pub fn local_pip_args(self, args: impl IntoIterator<Item = impl Into<String>>) -> Self {
        let args: Vec<String> = args.into_iter().map(Into::into).collect();
        self.with(|s| s.local.get_or_insert_with(LocalSettings::default).pip_args = args)
    }

    /// The URL the node calls once connected (the local copy's, for `run_locally`).
    /// Owned, because a `run_locally` app whose code changed is started again, on
    /// another port.
    pub fn connected_url(&self) -> Option<String> {
        self.conn.get().map(|c| c.client.base_url().to_string())
    }

    /// The Gradio version the connected app reports.
    pub fn gradio_version(&self) -> Option<String> {
        self.conn.get().map(|c| c.client.version().to_string())
    }

    /// The log of the `run_locally` app, once it runs.
    pub fn local_log(&self) -> Option<PathBuf> {
        self.conn
            .get()
            .and_then(|c| c.local.as_ref().map(|l| l.log.clone()))
    }

    /// Whether the connected endpoint is a generator (streams partial outputs).
    pub fn is_generator(&self) -> Option<bool> {
        self.conn
            .get()
            .map(|c| c.client.is_generator(&self.settings.api))
    }

    /// The revision that is part of the cache key, if known: pinned with
    /// [`GradioNode::revision`] or learnt by [`GradioNode::connect`]. A node running
    /// locally from a directory or git URL is keyed by its code's revision as it is at
    /// each run instead (see [`GradioNode::run_locally_from`]).
    pub fn known_revision(&self) -> Option<&str> {
        self.settings.revision.as_deref()
    }
}

impl<Args: ArgTuple, Outs: OutputTuple> GradioNode<Args, Outs> {
    /// Connects now instead of at the first run: starts the local copy (`run_locally`),
    /// resolves the Space, reads `/config` and `/info`, checks the endpoint and the port
    /// names, and records the Space's revision in the cache key (a node connected lazily,
    /// at its first run, asks the Hub for the revision before its cache look-up instead).
    /// Call it after the other builder methods: a change made afterwards connects again.
    pub async fn connect(mut self) -> Result<Self, Error> {
        let conn = connect(&self.settings, None, &mut |_| {}).await?;
        if self.settings.revision.is_none() {
            if let Some(r) = conn.revision.clone() {
                self = self.revision(&r);
            }
        }
        self.conn = Arc::new(ConnSlot::with(conn));
        Ok(self)
    }
}

fn remote(s: &Settings, service: &str, status: Option<u16>, message: impl Into<String>) -> Error {
    Error::Remote {
        node: s.node.clone(),
        service: service.to_string(),
        endpoint: s.api.clone(),
        status,
        message: message.into(),
    }
}

/// Whether the node runs its app locally from a directory or git URL: its code (and so
/// its cache key) can change under the same node, at any run.
fn local_code(s: &Settings) -> Option<&LocalSettings> {
    s.local.as_ref().filter(|l| l.source != LocalSource::Space)
}

/// The revision of a `run_locally_from` node's code as it is now (`None` for other nodes
/// or when it cannot be told).
async fn current_code_revision(s: &Settings) -> Option<String> {
    let local = local_code(s)?.clone();
    let token = s.token.clone();
    tokio::task::spawn_blocking(move || local::source_revision(&local, token.as_ref()))
        .await
        .ok()
        .flatten()
}

/// The node's connection: made by its first run or preflight, then shared by every run;
/// made again when the node's `run_locally` code is not the code the running app was
/// started with (the revision the cache key was made with, else the code's revision
/// now), so that a key always names the code that computed its result.
async fn connection(
    s: &Settings,
    slot: &ConnSlot,
    progress: &mut (dyn FnMut(String) + Send),
) -> Result<Arc<Connection>, Error> {
    let keyed = slot.keyed.lock().unwrap().take();
    let _connecting = slot.connecting.lock().await;
    let mut wanted = keyed;
    if let Some(conn) = slot.get() {
        let Some(app) = conn.local.as_ref().filter(|_| local_code(s).is_some()) else {
            // Shared with the app's other clients: when a failed request made the app
            // suspect and it restarted, its description is read again (once for all).
            return match conn.client.refreshed().await {
                Some(client) => renew(s, slot, &conn, client),
                None => Ok(conn),
            };
        };
        if wanted.is_none() {
            wanted = current_code_revision(s).await;
        }
        match &wanted {
            Some(w) if app.revision.as_deref() != Some(w.as_str()) => progress(format!(
                "run_locally: the app's code changed ({} -> {w}); starting it again",
                app.revision.as_deref().unwrap_or("unknown revision")
            )),
            _ => return Ok(conn),
        }
    }
    let conn = Arc::new(connect(s, wanted.as_deref(), progress).await?);
    *slot.current.lock().unwrap() = Some(conn.clone());
    Ok(conn)
}

/// `service`, naming the URL the app answers at unless it already does.
fn with_url(service: &str, url: &str) -> String {
    if service.contains(url) {
        service.to_string()
    } else {
        format!("{service} at {url}")
    }
}

/// Connects; a `run_locally` app already running with code other than `expected` (a
/// revision) is started again.
async fn connect(
    s: &Settings,
    expected: Option<&str>,
    progress: &mut (dyn FnMut(String) + Send),
) -> Result<Connection, Error> {
    let target = s
        .target
        .clone()
        .map_err(|m| remote(s, "Gradio app", None, m))?;
    let mut service = target.describe();
    let mut local_app = None;
    if let Some(local) = &s.local {
        let space_id = match &target {
            Target::Space(id) => Some(id.as_str()),
            Target::Url(_) => None,
        };
        progress("run_locally: starting the app locally".into());
        match local::start(&s.node, space_id, local, &s.hub, s.token.as_ref(), expected).await {
            Ok(app) => {
                progress(format!(
                    "run_locally: the local copy answers at {} (its log: {})",
                    app.url,
                    app.log.display()
                ));
                local_app = Some(app)
            }
            Err(message) => {
                if local.fallback && !local::no_fallback_env() {
                    tracing::warn!(node = %s.node, "run_locally failed, using the remote {service}: {message}");
                    progress(format!(
                        "run_locally failed; using the remote {service} instead: {message}"
                    ));
                } else {
                    progress(format!(
                        "run_locally failed and falling back is off: {message}"
                    ));
                    return Err(remote(
                        s,
                        &format!("{service} (run_locally)"),
                        None,
                        message,
                    ));
                }
            }
        }
    }
    let (url, sha) = match (&local_app, &target) {
        (Some(app), _) => {
            service = format!("{service} (local copy at {})", app.url);
            (app.url.clone(), app.revision.clone())
        }
        (None, Target::Url(url)) => (url.clone(), None),
        (None, Target::Space(id)) => {
            let http =
                hub_client(&s.options).map_err(|e| remote(s, &service, None, e.to_string()))?;
            let resolved = space::resolve(&http, &s.hub, id, s.token.as_ref(), s.space_wait)
                .await
                .map_err(|(status, m)| remote(s, &service, status, m))?;
            (resolved.url, resolved.sha)
        }
    };
    let client = GradioClient::connect(
        &url,
        &s.node,
        &service,
        s.token.clone(),
        s.auth.clone(),
        s.options.clone(),
    )
    .await
    .map_err(|e| match e {
        // Name the endpoint the node calls, with the route that failed in the message.
        Error::Remote {
            node,
            service,
            endpoint,
            status,
            message,
        } => Error::Remote {
            node,
            service,
            endpoint: s.api.clone(),
            status,
            message: format!("{endpoint}: {message}"),
        },
        other => other,
    })?;
    let service = with_url(&service, client.base_url());
    // A description found in the shared connection may be of an older run of the app:
    // when it disagrees with the node, the app is asked whether it restarted.
    let (client, plan) = match plan(s, &client, &service) {
        Ok(plan) => (client, plan),
        Err(e) if client.read_it_here() => return Err(e),
        Err(e) => match client.restarted().await {
            Some(client) => {
                let plan = plan(s, &client, &service)?;
                (client, plan)
            }
            None => return Err(e),
        },
    };
    Ok(Connection {
        client,
        service,
        plan,
        revision: s.revision.clone().or(sha),
        local: local_app,
    })
}

/// Checks the endpoint, the parameter names, the declared port types and the outputs
/// against `/info`, and orders the arguments. Every problem found is reported, at once, in
/// one error naming the node, the app (its URL) and the endpoint; each problem names its
/// port.
fn plan(s: &Settings, client: &GradioClient, service: &str) -> Result<Vec<Arg>, Error> {
    let err = |m: String| remote(s, service, None, m);
    let Some(info) = client.endpoints().get(&s.api) else {
        if client.has_endpoint(&s.api) || !s.validate {
            // Undocumented endpoint (show_api=False): arguments go by position.
            if !s.fixed.is_empty() {
                return Err(err(format!(
                    "the app does not describe {} in /info, so fixed parameters ({}) cannot be placed; declare them as inputs, in order",
                    s.api,
                    s.fixed.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
            return Ok((0..s.inputs.len())
                .map(|i| Arg::Input(i, Wrap::Plain))
                .collect());
        }
        let names = client.api_names();
        let hint = match suggest(&s.api, names.iter().map(String::as_str)) {
            Some(m) => format!("; did you mean `{m}`?"),
            None => String::new(),
        };
        return Err(err(format!(
            "the app has no endpoint `{}`{hint} (its endpoints: {})",
            s.api,
            if names.is_empty() {
                "none".into()
            } else {
                names.join(", ")
            }
        )));
    };
    let param_names: Vec<&str> = info.parameters.iter().map(|p| p.name.as_str()).collect();
    let find = |name: &str| {
        info.parameters
            .iter()
            .position(|p| p.name == name)
            .or_else(|| info.parameters.iter().position(|p| p.label == name))
    };
    let unknown = |name: &str, what: &str| {
        let hint = match suggest(name, param_names.iter().copied()) {
            Some(m) => format!("; did you mean `{m}`?"),
            None => String::new(),
        };
        format!(
            "{} has no parameter `{name}` ({what}){hint} (its parameters: {})",
            s.api,
            if param_names.is_empty() {
                "none".into()
            } else {
                param_names.join(", ")
            }
        )
    };
    let mut problems: Vec<String> = Vec::new();
    let mut plan: Vec<Option<Arg>> = vec![None; info.parameters.len()];
    for (i, port) in s.inputs.iter().enumerate() {
        let Some(p) = find(&port.name) else {
            problems.push(unknown(&port.name, "an input port"));
            continue;
        };
        if plan[p].is_some() {
            problems.push(format!("parameter `{}` is given twice", port.name));
            continue;
        }
        let param = &info.parameters[p];
        plan[p] = Some(Arg::Input(i, Wrap::for_component(&param.component)));
        if !s.validate {
            continue;
        }
        if param.is_file != port.kind.is_file() {
            problems.push(if param.is_file {
                format!(
                    "parameter `{}` of {} takes a file ({}): declare the port as Image, Audio, Video or File",
                    param.name, s.api, param.component
                )
            } else {
                format!(
                    "parameter `{}` of {} is a {} and takes no file: declare the port with a plain type (String, f64, bool, serde types)",
                    param.name, s.api, param.component
                )
            });
            continue;
        }
        let takes = Shape::of_component(&param.component, &param.schema);
        if !port.shape.fits(takes) {
            problems.push(format!(
                "input `{}` is declared as {} ({}), but parameter `{}` of {} is a {} and takes {}: declare it as {}",
                port.name,
                port.type_name,
                port.shape.name(),
                param.name,
                s.api,
                param.component,
                takes.name(),
                takes.rust_types()
            ));
        }
    }
    for (name, value) in &s.fixed {
        let Some(p) = find(name) else {
            problems.push(unknown(name, "a fixed parameter"));
            continue;
        };
        if plan[p].is_some() {
            problems.push(format!("parameter `{name}` is both an input and fixed"));
            continue;
        }
        plan[p] = Some(Arg::Fixed(value.clone()));
    }
    let mut out = Vec::with_capacity(plan.len());
    for (slot, param) in plan.into_iter().zip(&info.parameters) {
        match slot {
            Some(a) => out.push(a),
            None if param.has_default => out.push(Arg::Default(param.default.clone())),
            None => problems.push(format!(
                "parameter `{}` of {} has no default: declare it with .input::<T>(\"{}\") or set it with .param(\"{}\", …)",
                param.name, s.api, param.name, param.name
            )),
        }
    }
    if s.validate && !info.returns.is_empty() {
        problems.extend(output_problems(s, &info.returns));
    }
    match problems.len() {
        0 => Ok(out),
        1 => Err(err(problems.remove(0))),
        n => Err(err(format!(
            "{n} problems with the declared ports:\n- {}",
            problems.join("\n- ")
        ))),
    }
}

/// What is wrong with the declared outputs for the endpoint's `returns`.
fn output_problems(s: &Settings, returns: &[ReturnInfo]) -> Vec<String> {
    let mut problems = Vec::new();
    let shown = || {
        returns
            .iter()
            .map(|r| {
                if r.label.is_empty() {
                    r.component.clone()
                } else {
                    r.label.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    // One return value may spread over several ports (a tuple, an ImageSlider) only if it
    // can be a list: a Textbox's string or a Number's number cannot.
    let spreads = returns.len() == 1 && may_spread(&returns[0]);
    if let Some(&max) = s.positions.iter().max() {
        if max >= returns.len() && !spreads {
            let beyond: Vec<String> = s
                .outputs
                .iter()
                .zip(&s.positions)
                .filter(|(_, &p)| p >= returns.len())
                .map(|(o, p)| format!("`{}` (value {p})", o.name))
                .collect();
            problems.push(format!(
                "{} returns {} value(s) ({}), but the node declares {} output(s); no value for {}",
                s.api,
                returns.len(),
                shown(),
                s.positions.len(),
                beyond.join(", ")
            ));
        }
    }
    for (port, &pos) in s.outputs.iter().zip(&s.positions) {
        let Some(r) = returns.get(pos) else { continue };
        if !r.is_file && port.kind.is_file() {
            problems.push(format!(
                "output `{}` is declared as a file, but return value {pos} of {} is a {}",
                port.name, s.api, r.component
            ));
            continue;
        }
        if spreads || r.is_file || port.kind.is_file() {
            continue;
        }
        let gives = Shape::of_component(&r.component, &r.schema);
        if !port.shape.fits(gives) {
            problems.push(format!(
                "output `{}` is declared as {} ({}), but return value {pos} of {} is a {} giving {}: declare it as {}",
                port.name,
                port.type_name,
                port.shape.name(),
                s.api,
                r.component,
                gives.name(),
                gives.rust_types()
            ));
        }
    }
    problems
}

/// Whether one return value can be a list to spread over several output ports.
fn may_spread(r: &ReturnInfo) -> bool {
    match r.schema.get("type").and_then(Json::as_str) {
        Some("array") => true,
        Some(_) => false,
        None => Shape::of_component(&r.component, &r.schema) == Shape::Any,
    }
}

impl<Args: ArgTuple, Outs: OutputTuple> Configure for GradioNode<Args, Outs> {
    fn config_mut(&mut self) -> &mut NodeConfig {
        &mut self.spec.config
    }
}

impl<Args: ArgTuple, Outs: OutputTuple> Node for GradioNode<Args, Outs> {
    fn spec(&self) -> &NodeSpec {
        &self.spec
    }

    fn run(
        &self,
        ctx: NodeContext,
        inputs: Inputs,
    ) -> BoxFuture<'static, Result<Vec<Value>, BoxError>> {
        let settings = self.settings.clone();
        let slot = self.conn.clone();
        let types: Vec<PortType> = self.spec.outputs.iter().map(|p| p.ty).collect();
        Box::pin(async move {
            run(&settings, &slot, &types, &ctx, inputs)
                .await
                .map_err(BoxError::from)
        })
    }

    /// What the app's `/info` says of the parameter input `port` feeds, once the node is
    /// connected (by a run, [`Pipeline::preflight`](crate::Pipeline::preflight) or
    /// [`GradioNode::connect`]): a Dropdown's or Radio's choices, a Slider's range.
    fn input_hint(&self, port: usize) -> Option<crate::node::InputHint> {
        let conn = self.conn.get()?;
        let info = conn.client.endpoints().get(&self.settings.api)?;
        let param = conn
            .plan
            .iter()
            .position(|arg| matches!(arg, Arg::Input(p, _) if *p == port))
            .and_then(|i| info.parameters.get(i))?;
        if let Some(choices) = param.choices() {
            return Some(crate::node::InputHint::choices(choices));
        }
        let (low, high) = param.range()?;
        Some(crate::node::InputHint::range(low, high))
    }

    /// Connects as [`GradioNode::connect`] does, into the connection the runs use.
    fn preflight(&self) -> Option<BoxFuture<'static, Result<(), Error>>> {
        let settings = self.settings.clone();
        let slot = self.conn.clone();
        Some(Box::pin(async move {
            let log = &mut |m: String| tracing::info!(node = %settings.node, "{m}");
            connection(&settings, &slot, log).await.map(|_| ())
        }))
    }

    /// A Space without a pinned revision is keyed by its current commit, asked of the Hub
    /// once per node (one small request, made before the cache look-up). The answer is
    /// remembered on disk (`$DAGGR_SPACES_DIR/revisions`), so that when the Hub cannot be
    /// reached the last revision it gave keys the node: an offline rerun still finds the
    /// results computed online. With no revision known at all the key has none, and the
    /// call itself reports the error.
    ///
    /// A node running locally from a directory or git URL
    /// ([`GradioNode::run_locally_from`]) is keyed by its code as it is at each run,
    /// whether it connected lazily, by preflight or by [`GradioNode::connect`], and
    /// whatever revision is pinned: a git repository's commit with a hash of its
    /// uncommitted changes and untracked files, a plain directory's hash of its files
    /// (venvs, `.git`, logs and caches left out), a git URL's current `HEAD`. The run then
    /// calls an app running that very code, starting it again if it runs older code.
    fn runtime_fingerprint(&self) -> Option<BoxFuture<'static, Option<String>>> {
        let s = &self.settings;
        if local_code(s).is_some() {
            let settings = self.settings.clone();
            let slot = self.conn.clone();
            return Some(Box::pin(async move {
                let revision = current_code_revision(&settings).await?;
                *slot.keyed.lock().unwrap() = Some(revision.clone());
                Some(format!("revision:{revision}"))
            }));
        }
        let Ok(Target::Space(id)) = &s.target else {
            return None;
        };
        if s.revision.is_some() {
            return None;
        }
        let known = self.conn.get().and_then(|c| c.revision.clone());
        let cell = self.hub_revision.clone();
        let (id, hub, token) = (id.clone(), s.hub.clone(), s.token.clone());
        let http = hub_client(&s.options);
        let memo = local::revision_file(&local::revisions_dir(), &hub, &id);
        Some(Box::pin(async move {
            let revision = match known {
                Some(r) => r,
                None => cell
                    .get_or_try_init(|| async {
                        let http = http.map_err(|_| ())?;
                        match space::revision(&http, &hub, &id, token.as_ref()).await {
                            Some(r) => {
                                remember_revision(&memo, &r);
                                Ok(r)
                            }
                            None => last_revision(&memo).ok_or(()),
                        }
                    })
                    .await
                    .ok()?
                    .clone(),
            };
            Some(format!("revision:{revision}"))
        }))
    }
}

/// Keeps the revision the Hub gave (best effort: without it only offline reruns miss).
/// Written to a temporary file and renamed, so a reader never sees half a revision.
fn remember_revision(file: &std::path::Path, revision: &str) {
    if last_revision(file).as_deref() == Some(revision) {
        return;
    }
    let Some(dir) = file.parent() else { return };
    let tmp = file.with_extension(format!("tmp{}", std::process::id()));
    let written = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&tmp, revision))
        .and_then(|()| std::fs::rename(&tmp, file));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        tracing::debug!(file = %file.display(), error = %e, "cannot remember the Space's revision");
    }
}

fn last_revision(file: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    let revision = text.trim();
    (!revision.is_empty()).then(|| revision.to_string())
}

impl<Args: ArgTuple, Outs: OutputTuple> TypedNode for GradioNode<Args, Outs> {
    type Args = Args;
    type Handles = Outs::Handles;
    fn handles(node: usize) -> Outs::Handles {
        Outs::handles(node)
    }
}

async fn run(
    s: &Settings,
    slot: &ConnSlot,
    types: &[PortType],
    ctx: &NodeContext,
    inputs: Inputs,
) -> Result<Vec<Value>, Error> {
    let cancel = ctx.cancellation_token();
    // Connection steps (run_locally's above all) go to the node's log as well: its fallback
    // decision must stay readable after the run, not only flash by.
    let mut progress = |m: String| {
        ctx.log(m.clone());
        ctx.progress(None, m)
    };
    if slot.get().is_none() {
        ctx.progress(None, "connecting");
    }
    let mut conn = tokio::select! {
        c = connection(s, slot, &mut progress) => c?,
        _ = cancel.cancelled() => return Err(Error::Cancelled { node: s.node.clone() }),
    };
    let mut reused = Vec::new();
    let first = call(s, &conn, types, ctx, &inputs, &mut reused).await;
    let Err(error) = first else { return first };
    // Files uploaded before this call (by an earlier run, or another node) may be gone
    // from the server (the app restarted): if so, they go up again and the call is made
    // once more, with the restarted app's description.
    let recovered = tokio::select! {
        c = conn.client.recover(&error, &reused) => c,
        _ = cancel.cancelled() => return Err(Error::Cancelled { node: s.node.clone() }),
    };
    let Some(client) = recovered else {
        return Err(error);
    };
    progress(format!(
        "the app lost the files uploaded to it earlier ({}); uploading them again",
        match &error {
            Error::Remote { message, .. } => message.as_str(),
            _ => "it restarted",
        }
    ));
    if client.generation() != conn.client.generation() {
        conn = renew(s, slot, &conn, client)?;
    }
    call(s, &conn, types, ctx, &inputs, &mut Vec::new()).await
}

/// Uses `client` (a newer description of the app) for the node's connection from now on,
/// unless another run already replaced the connection `old`.
fn renew(
    s: &Settings,
    slot: &ConnSlot,
    old: &Arc<Connection>,
    client: GradioClient,
) -> Result<Arc<Connection>, Error> {
    let renewed = Arc::new(old.with_client(s, client)?);
    let mut current = slot.current.lock().unwrap();
    if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, old)) {
        *current = Some(renewed.clone());
    }
    Ok(renewed)
}

/// One call of the node's endpoint through `conn`: inputs encoded (uploads that were
/// made before go to `reused`), the call, outputs decoded.
async fn call(
    s: &Settings,
    conn: &Connection,
    types: &[PortType],
    ctx: &NodeContext,
    inputs: &Inputs,
    reused: &mut Vec<Reused>,
) -> Result<Vec<Value>, Error> {
    let cancel = ctx.cancellation_token();
    let client = &conn.client;
    let mut data = Vec::with_capacity(conn.plan.len());
    for arg in &conn.plan {
        data.push(match arg {
            Arg::Fixed(v) | Arg::Default(v) => v.clone(),
            Arg::Input(i, wrap) => {
                let value = inputs.value(*i);
                encode_input(s, client, &s.inputs[*i], *wrap, value, &cancel, reused).await?
            }
        });
    }
    let names: Vec<&str> = s.outputs.iter().map(|o| o.name.as_str()).collect();
    let positions = &s.positions;
    let mut updates = 0usize;
    let mut on_update = |u: Update| match u {
        Update::Progress(f, m) => ctx.progress(f, m),
        Update::Partial(values) => {
            updates += 1;
            let values = spread(values, positions);
            let partial: serde_json::Map<String, Json> = names
                .iter()
                .zip(positions)
                .filter_map(|(n, &p)| values.get(p).map(|v| (n.to_string(), v.clone())))
                .collect();
            ctx.progress(None, format!("{updates} update(s)"));
            ctx.partial(Json::Object(partial));
        }
    };
    let values = client
        .predict(&s.api, data, &cancel, &mut on_update)
        .await?;
    let values = spread(values, positions);
    let mut out = Vec::with_capacity(s.outputs.len());
    for ((port, &pos), ty) in s.outputs.iter().zip(positions).zip(types) {
        let Some(v) = values.get(pos) else {
            return Err(remote(
                s,
                &conn.service,
                None,
                format!(
                    "wrong number of outputs: the result has {} value(s); output `{}` wants value {pos}",
                    values.len(),
                    port.name
                ),
            ));
        };
        out.push(decode_output(s, client, &conn.service, port, ty, v, &cancel).await?);
    }
    Ok(out)
}

/// A single list-valued result spread over several ports (as the Python client maps a
/// tuple result by position), when the ports ask for more values than came back.
fn spread(values: Vec<Json>, positions: &[usize]) -> Vec<Json> {
    let wanted = positions.iter().max().map_or(0, |m| m + 1);
    match values.as_slice() {
        [Json::Array(inner)] if wanted > 1 && inner.len() >= wanted => inner.clone(),
        _ => values,
    }
}

/// The JSON of one input: a plain value as it is, media uploaded (each file once per app:
/// see [`GradioClient::upload`]); the files sent by a path uploaded before go to `reused`.
async fn encode_input(
    s: &Settings,
    client: &GradioClient,
    port: &PortDecl,
    wrap: Wrap,
    value: &Value,
    cancel: &CancellationToken,
    reused: &mut Vec<Reused>,
) -> Result<Json, Error> {
    let media = match port.kind {
        Kind::Json => return Ok(value.to_json()),
        Kind::One(m) | Kind::Optional(m) | Kind::Many(m) => m,
    };
    let files = media_parts(value, media, port.kind).ok_or_else(|| Error::WrongValueType {
        node: s.node.clone(),
        port: port.name.clone(),
        expected: "a media value",
        found: value.port_type().name(),
    })?;
    let mut uploaded = Vec::with_capacity(files.len());
    for f in &files {
        let name = f.name.clone().unwrap_or_else(|| default_name(&f.mime));
        let (file, earlier) = client
            .upload_tracked(&f.bytes, &name, &f.mime, &f.integrity, cancel)
            .await?;
        reused.extend(earlier);
        uploaded.push(wrap.apply(file, &f.mime));
    }
    Ok(match port.kind {
        Kind::One(_) => uploaded.pop().unwrap_or(Json::Null),
        Kind::Optional(_) => uploaded.pop().unwrap_or(Json::Null),
        _ => Json::Array(uploaded),
    })
}

/// The FileData object inside an output value: itself, or the `image`/`video`/`audio`/
/// `file` field of a wrapper (galleries, videos).
fn file_data(v: &Json) -> Option<&Json> {
    if v.get("path").is_some() || v.get("url").is_some() {
        return Some(v);
    }
    ["image", "video", "audio", "file"]
        .iter()
        .find_map(|k| v.get(*k).filter(|f| f.is_object()))
        .and_then(file_data)
}

async fn decode_output(
    s: &Settings,
    client: &GradioClient,
    service: &str,
    port: &PortDecl,
    ty: &PortType,
    v: &Json,
    cancel: &CancellationToken,
) -> Result<Value, Error> {
    let codec = |source| Error::Codec {
        node: s.node.clone(),
        port: port.name.clone(),
        type_name: ty.name(),
        source,
    };
    let media = match port.kind {
        Kind::Json => {
            let bytes = serde_json::to_vec(v).map_err(codec)?;
            return ty.decode(&bytes, BlobSet::default()).map_err(codec);
        }
        Kind::One(m) | Kind::Optional(m) | Kind::Many(m) => m,
    };
    let items: Vec<&Json> = match (port.kind, v) {
        (Kind::Optional(_), Json::Null) => Vec::new(),
        (Kind::Many(_), Json::Array(items)) => items.iter().collect(),
        (Kind::Many(_), Json::Null) => Vec::new(),
        (_, v) => vec![v],
    };
    let mut files = Vec::with_capacity(items.len());
    for item in items {
        let Some(fd) = file_data(item) else {
            let shown: String = item.to_string().chars().take(200).collect();
            return Err(remote(
                s,
                service,
                None,
                format!(
                    "output `{}` expects a file, the app returned {shown}",
                    port.name
                ),
            ));
        };
        let (bytes, mime, name) = client.download(fd, cancel).await?;
        let mime = mime
            .or_else(|| {
                name.as_deref()
                    .and_then(|n| guess_mime(std::path::Path::new(n)))
                    .map(str::to_string)
            })
            .or_else(|| sniff_mime(&bytes).map(str::to_string))
            .unwrap_or_else(|| "application/octet-stream".into());
        files.push(MediaParts {
            bytes,
            mime,
            name,
            integrity: String::new(),
        });
    }
    if matches!(port.kind, Kind::One(_)) && files.is_empty() {
        return Err(remote(
            s,
            service,
            None,
            format!("output `{}` is empty (null)", port.name),
        ));
    }
    make_value(media, port.kind, files).map_err(codec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_shaped_for_video_and_gallery_components() {
        let fd = json!({"path": "/tmp/a.png", "meta": {"_type": "gradio.FileData"}});
        assert_eq!(
            Wrap::for_component("Image").apply(fd.clone(), "image/png"),
            fd
        );
        assert_eq!(
            Wrap::for_component("Video").apply(fd.clone(), "video/mp4"),
            json!({"video": fd, "subtitles": null})
        );
        assert_eq!(
            Wrap::for_component("gallery").apply(fd.clone(), "image/png"),
            json!({"image": fd, "caption": null})
        );
        assert_eq!(
            Wrap::for_component("Gallery").apply(fd.clone(), "video/webm"),
            json!({"video": fd, "caption": null})
        );
    }

    #[test]
    fn port_kinds_follow_the_rust_type() {
        assert_eq!(Kind::of::<String>(), Kind::Json);
        assert_eq!(Kind::of::<Image>(), Kind::One(Media::Image));
        assert_eq!(Kind::of::<Option<Audio>>(), Kind::Optional(Media::Audio));
        assert_eq!(Kind::of::<Vec<File>>(), Kind::Many(Media::File));
    }

    #[test]
    fn a_single_list_spreads_over_several_ports() {
        let v = spread(vec![json!([1, 2])], &[0, 1]);
        assert_eq!(v, vec![json!(1), json!(2)]);
        assert_eq!(spread(vec![json!([1, 2])], &[0]), vec![json!([1, 2])]);
        assert_eq!(
            spread(vec![json!(1), json!(2)], &[0, 1]),
            vec![json!(1), json!(2)]
        );
    }

    #[test]
    fn file_data_is_found_in_wrappers() {
        let fd = json!({"path": "/tmp/x.png", "meta": {"_type": "gradio.FileData"}});
        assert_eq!(file_data(&fd), Some(&fd));
        assert_eq!(
            file_data(&json!({"image": fd.clone(), "caption": null})),
            Some(&fd)
        );
        assert_eq!(
            file_data(&json!({"video": fd.clone(), "subtitles": null})),
            Some(&fd)
        );
        assert_eq!(file_data(&json!("text")), None);
    }

    #[test]
    fn the_builder_types_the_ports() {
        let node = GradioNode::new("n", "owner/space")
            .api("combine")
            .input::<f64>("x")
            .input::<String>("label")
            .output::<f64>("doubled")
            .skip_output()
            .output::<Image>("img");
        let _typed: &GradioNode<(f64, String), (f64, Image)> = &node;
        assert_eq!(node.spec.identity, "owner/space:/combine");
        assert_eq!(node.spec.params["outputs"], json!([0, 2]));
        assert_eq!(node.spec.inputs.len(), 2);
        assert!(node.spec.code_fingerprint.is_empty());
        let pinned = node.revision("abc123");
        assert_eq!(pinned.spec.code_fingerprint, "revision:abc123");
    }

    #[test]
    fn default_upload_names_follow_the_mime_type() {
        assert_eq!(default_name("image/png"), "image.png");
        assert_eq!(default_name("image/jpeg"), "image.jpg");
        assert_eq!(default_name("application/octet-stream"), "file.bin");
        assert_eq!(default_name("audio/wav"), "audio.wav");
    }
}
