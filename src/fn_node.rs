//! [`FnNode`]: a node from a plain Rust function or closure, sync or async.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;

use crate::error::BoxError;
use crate::graph::{ArgTuple, TypedNode};
use crate::node::{Configure, Inputs, Node, NodeConfig, NodeContext, NodeSpec, PortSpec};
use crate::value::{PortValue, Value};

type CallFn = dyn Fn(NodeContext, Inputs, bool) -> BoxFuture<'static, Result<Vec<Value>, BoxError>> + Send + Sync;

/// A node that calls a Rust function. Its inputs are the function's arguments and
/// its output is the return value (port `output` unless renamed).
///
/// ```
/// use daggr::{Configure, FnNode};
/// let double = FnNode::sync("double", |x: u64| x * 2).inputs(["x"]).version("1");
/// let fetch = FnNode::from_async("fetch", |url: String| async move { url.len() });
/// let parse = FnNode::try_sync("parse", |s: String| s.parse::<i64>());
/// # let _ = (double, fetch, parse);
/// ```
///
/// Without the `#[fn_node]` macro the engine cannot see a closure's code: bump
/// [`Configure::version`] (or set [`FnNode::code_fingerprint`]) when you change
/// what it computes, or its cached results will be reused.
pub struct FnNode<Args, R> {
    spec: NodeSpec,
    call: Arc<CallFn>,
    blocking: bool,
    _types: PhantomData<fn(Args) -> R>,
}

/// A synchronous function of `Args` (a tuple) returning `R`.
pub trait SyncFn<Args, R>: Send + Sync + 'static {
    /// Calls it.
    fn call(&self, args: Args) -> R;
}

/// An async function of `Args` (a tuple) returning the future `Fut`.
pub trait AsyncFn<Args, Fut>: Send + Sync + 'static {
    /// Calls it.
    fn call(&self, args: Args) -> Fut;
}

/// A synchronous function taking a [`NodeContext`] first.
pub trait SyncCtxFn<Args, R>: Send + Sync + 'static {
    /// Calls it.
    fn call(&self, ctx: NodeContext, args: Args) -> R;
}

/// An async function taking a [`NodeContext`] first.
pub trait AsyncCtxFn<Args, Fut>: Send + Sync + 'static {
    /// Calls it.
    fn call(&self, ctx: NodeContext, args: Args) -> Fut;
}

macro_rules! fn_traits {
    ($( ($($A:ident $a:ident),*) )*) => {$(
        impl<F, R, $($A),*> SyncFn<($($A,)*), R> for F
        where F: Fn($($A),*) -> R + Send + Sync + 'static {
            fn call(&self, ($($a,)*): ($($A,)*)) -> R { self($($a),*) }
        }
        impl<F, Fut, $($A),*> AsyncFn<($($A,)*), Fut> for F
        where F: Fn($($A),*) -> Fut + Send + Sync + 'static {
            fn call(&self, ($($a,)*): ($($A,)*)) -> Fut { self($($a),*) }
        }
        impl<F, R, $($A),*> SyncCtxFn<($($A,)*), R> for F
        where F: Fn(NodeContext, $($A),*) -> R + Send + Sync + 'static {
            fn call(&self, ctx: NodeContext, ($($a,)*): ($($A,)*)) -> R { self(ctx, $($a),*) }
        }
        impl<F, Fut, $($A),*> AsyncCtxFn<($($A,)*), Fut> for F
        where F: Fn(NodeContext, $($A),*) -> Fut + Send + Sync + 'static {
            fn call(&self, ctx: NodeContext, ($($a,)*): ($($A,)*)) -> Fut { self(ctx, $($a),*) }
        }
    )*};
}

fn_traits! {
    ()
    (A0 a0)
    (A0 a0, A1 a1)
    (A0 a0, A1 a1, A2 a2)
    (A0 a0, A1 a1, A2 a2, A3 a3)
    (A0 a0, A1 a1, A2 a2, A3 a3, A4 a4)
    (A0 a0, A1 a1, A2 a2, A3 a3, A4 a4, A5 a5)
    (A0 a0, A1 a1, A2 a2, A3 a3, A4 a4, A5 a5, A6 a6)
    (A0 a0, A1 a1, A2 a2, A3 a3, A4 a4, A5 a5, A6 a6, A7 a7)
}

fn encode_output<T: PortValue>(node: &str, value: T) -> Result<Vec<Value>, BoxError> {
    Value::new(value).map(|v| vec![v]).map_err(|e| {
        format!("node `{node}`: cannot encode its output as `{}`: {e}", std::any::type_name::<T>()).into()
    })
}

/// Runs synchronous work where it belongs: on the blocking pool (so a slow function never
/// stalls the scheduler), or inline for functions marked cheap.
async fn run_sync<T: Send + 'static>(blocking: bool, work: impl FnOnce() -> T + Send + 'static) -> Result<T, BoxError> {
    if blocking {
        tokio::task::spawn_blocking(work).await.map_err(|e| {
            if e.is_panic() {
                BoxError::from(format!("panicked: {}", panic_message(e.into_panic())))
            } else {
                BoxError::from("the blocking task was cancelled")
            }
        })
    } else {
        Ok(work())
    }
}

pub(crate) fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

impl<Args: ArgTuple, R: PortValue> FnNode<Args, R> {
    fn with_call(name: &str, identity: String, call: Arc<CallFn>) -> Self {
        let names: Vec<String> = (0..Args::ARITY).map(|i| format!("in{i}")).collect();
        FnNode {
            spec: NodeSpec {
                name: name.to_string(),
                kind: "fn",
                identity,
                code_fingerprint: String::new(),
                params: serde_json::Value::Null,
                inputs: Args::port_specs(&names),
                outputs: vec![PortSpec::new::<R>("output")],
                config: NodeConfig::default(),
            },
            call,
            blocking: true,
            _types: PhantomData,
        }
    }

    /// A node from a synchronous function (run on tokio's blocking pool unless [`FnNode::inline`]).
    pub fn sync<F: SyncFn<Args, R>>(name: &str, f: F) -> Self {
        let identity = format!("fn:{name}:{}", std::any::type_name::<F>());
        Self::sync_tuple(name, identity, move |args: Args| Ok(f.call(args)))
    }

    /// A node from a synchronous function returning `Result`; `Err` fails the node.
    pub fn try_sync<F, E>(name: &str, f: F) -> Self
    where
        F: SyncFn<Args, Result<R, E>>,
        E: Into<BoxError> + Send + 'static,
    {
        let identity = format!("fn:{name}:{}", std::any::type_name::<F>());
        Self::sync_tuple(name, identity, move |args: Args| f.call(args).map_err(Into::into))
    }

    fn sync_tuple(
        name: &str,
        identity: String,
        f: impl Fn(Args) -> Result<R, BoxError> + Send + Sync + 'static,
    ) -> Self {
        let f = Arc::new(f);
        let node: Arc<str> = name.into();
        let call: Arc<CallFn> = Arc::new(move |_ctx, inputs, blocking| {
            let f = f.clone();
            let node = node.clone();
            async move {
                let args = Args::from_inputs(&inputs)?;
                let out = run_sync(blocking, move || f(args)).await??;
                encode_output(&node, out)
            }
            .boxed()
        });
        Self::with_call(name, identity, call)
    }

    /// A node from an async function.
    pub fn from_async<F, Fut>(name: &str, f: F) -> Self
    where
        F: AsyncFn<Args, Fut>,
        Fut: Future<Output = R> + Send + 'static,
    {
        let identity = format!("fn:{name}:{}", std::any::type_name::<F>());
        Self::async_tuple(name, identity, move |args: Args| f.call(args).map(Ok))
    }

    /// A node from an async function returning `Result`; `Err` fails the node.
    pub fn try_async<F, Fut, E>(name: &str, f: F) -> Self
    where
        F: AsyncFn<Args, Fut>,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
        E: Into<BoxError> + Send + 'static,
    {
        let identity = format!("fn:{name}:{}", std::any::type_name::<F>());
        Self::async_tuple(name, identity, move |args: Args| f.call(args).map(|r| r.map_err(Into::into)))
    }

    fn async_tuple<Fut>(name: &str, identity: String, f: impl Fn(Args) -> Fut + Send + Sync + 'static) -> Self
    where
        Fut: Future<Output = Result<R, BoxError>> + Send + 'static,
    {
        let f = Arc::new(f);
        let node: Arc<str> = name.into();
        let call: Arc<CallFn> = Arc::new(move |_ctx, inputs, _blocking| {
            let f = f.clone();
            let node = node.clone();
            async move {
                let args = Args::from_inputs(&inputs)?;
                let out = f(args).await?;
                encode_output(&node, out)
            }
            .boxed()
        });
        Self::with_call(name, identity, call)
    }

    /// A node from an async function that takes a [`NodeContext`] first (for progress,
    /// partial outputs and cancellation) and returns `Result`.
    pub fn with_context<F, Fut, E>(name: &str, f: F) -> Self
    where
        F: AsyncCtxFn<Args, Fut>,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
        E: Into<BoxError> + Send + 'static,
    {
        let f = Arc::new(f);
        let node: Arc<str> = name.into();
        let call: Arc<CallFn> = Arc::new(move |ctx, inputs, _blocking| {
            let f = f.clone();
            let node = node.clone();
            async move {
                let args = Args::from_inputs(&inputs)?;
                let out = f.call(ctx, args).await.map_err(Into::into)?;
                encode_output(&node, out)
            }
            .boxed()
        });
        Self::with_call(name, format!("fn:{name}:{}", std::any::type_name::<F>()), call)
    }

    /// A node from a synchronous function that takes a [`NodeContext`] first and returns
    /// `Result`; long loops should check [`NodeContext::is_cancelled`].
    pub fn sync_with_context<F, E>(name: &str, f: F) -> Self
    where
        F: SyncCtxFn<Args, Result<R, E>>,
        E: Into<BoxError> + Send + 'static,
    {
        let f = Arc::new(f);
        let node: Arc<str> = name.into();
        let call: Arc<CallFn> = Arc::new(move |ctx, inputs, blocking| {
            let f = f.clone();
            let node = node.clone();
            async move {
                let args = Args::from_inputs(&inputs)?;
                let out = run_sync(blocking, move || f.call(ctx, args)).await?.map_err(Into::into)?;
                encode_output(&node, out)
            }
            .boxed()
        });
        Self::with_call(name, format!("fn:{name}:{}", std::any::type_name::<F>()), call)
    }

    /// Names the input ports, in argument order (default `in0`, `in1`, …).
    pub fn inputs<const N: usize>(mut self, names: [&str; N]) -> Self {
        if N != Args::ARITY {
            tracing::warn!(node = %self.spec.name, given = N, arity = Args::ARITY, "input names do not match the arity");
        }
        for (port, name) in self.spec.inputs.iter_mut().zip(names) {
            port.name = name.to_string();
        }
        self
    }

    /// Names the output port (default `output`).
    pub fn output_name(mut self, name: &str) -> Self {
        self.spec.outputs[0].name = name.to_string();
        self
    }

    /// Sets the code fingerprint, part of the cache key (the `#[fn_node]` macro passes a
    /// hash of the function's tokens).
    pub fn code_fingerprint(mut self, fingerprint: impl Into<String>) -> Self {
        self.spec.code_fingerprint = fingerprint.into();
        self
    }

    /// Sets the node's identity, part of the cache key (default: the node name and the
    /// function's type name).
    pub fn identity(mut self, identity: impl Into<String>) -> Self {
        self.spec.identity = identity.into();
        self
    }

    /// Parameters that are part of the cache key but not inputs (model settings, say).
    pub fn params(mut self, params: serde_json::Value) -> Self {
        self.spec.params = params;
        self
    }

    /// Runs a synchronous function on the scheduler's thread instead of the blocking
    /// pool: for cheap functions only (microseconds), where the hop costs more than the work.
    pub fn inline(mut self) -> Self {
        self.blocking = false;
        self
    }
}

impl<Args: ArgTuple, R: PortValue> Configure for FnNode<Args, R> {
    fn config_mut(&mut self) -> &mut NodeConfig {
        &mut self.spec.config
    }
}

impl<Args: ArgTuple, R: PortValue> Node for FnNode<Args, R> {
    fn spec(&self) -> &NodeSpec {
        &self.spec
    }

    fn run(&self, ctx: NodeContext, inputs: Inputs) -> BoxFuture<'static, Result<Vec<Value>, BoxError>> {
        (self.call)(ctx, inputs, self.blocking)
    }
}

impl<Args: ArgTuple, R: PortValue> TypedNode for FnNode<Args, R> {
    type Args = Args;
    type Out = R;
}

/// The node behind [`crate::Graph::input`]: passes its constant through. It is cached like
/// any node, so an unchanged input reports as cached and an edited one as computed.
pub(crate) fn input_node<T: PortValue>(name: String) -> FnNode<(T,), T> {
    let mut node = FnNode::<(T,), T>::sync(&name, |v: T| v)
        .inputs(["value"])
        .output_name("value")
        .identity(format!("input:{}", std::any::type_name::<T>()))
        .inline();
    node.spec.kind = "input";
    node
}
