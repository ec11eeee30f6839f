//! The node behind [`crate::Graph::input`]: a named pipeline input, a node kind of its own
//! (`"input"`) that passes its constant through. It is cached like any node, so an
//! unchanged input reports as cached and an edited one as computed.

use std::marker::PhantomData;

use futures::future::BoxFuture;

use crate::error::BoxError;
use crate::graph::{Output, TypedNode};
use crate::node::{Inputs, Node, NodeConfig, NodeContext, NodeSpec, PortSpec};
use crate::value::{PortValue, Value};

/// The kind of an input node ([`NodeSpec::kind`]); the executor and sheets recognise
/// inputs by it.
pub const INPUT_KIND: &str = "input";

/// A named pipeline input of type `T`: one port `value` in (its constant), the same value
/// out.
pub(crate) struct InputNode<T> {
    spec: NodeSpec,
    _type: PhantomData<fn() -> T>,
}

impl<T: PortValue> InputNode<T> {
    pub(crate) fn new(name: String) -> Self {
        InputNode {
            spec: NodeSpec {
                name,
                kind: INPUT_KIND,
                // The type is part of what an input computes: the same name with another
                // type is another result.
                identity: format!("input:{}", std::any::type_name::<T>()),
                code_fingerprint: String::new(),
                params: serde_json::Value::Null,
                inputs: vec![PortSpec::new::<T>("value")],
                outputs: vec![PortSpec::new::<T>("value")],
                config: NodeConfig::default(),
            },
            _type: PhantomData,
        }
    }
}

impl<T: PortValue> Node for InputNode<T> {
    fn spec(&self) -> &NodeSpec {
        &self.spec
    }

    fn run(
        &self,
        _ctx: NodeContext,
        inputs: Inputs,
    ) -> BoxFuture<'static, Result<Vec<Value>, BoxError>> {
        // The value was encoded and checked as `T` when it was set: pass it through as is.
        let values = inputs.values;
        Box::pin(async move { Ok(values) })
    }
}

impl<T: PortValue> TypedNode for InputNode<T> {
    type Args = (T,);
    type Handles = Output<T>;
    fn handles(node: usize) -> Output<T> {
        Output::new(node, 0)
    }
}
