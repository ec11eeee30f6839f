//! Compile-time errors of `#[fn_node]` and `pipeline!` (trybuild): each case's `.stderr`
//! shows the message and the user's token it points at. `TRYBUILD=overwrite cargo test
//! --test ui` re-blesses them after a toolchain change; review the diff. The snapshots are
//! of the default build (trybuild passes the features on), so the test runs only there.

#![cfg(all(
    feature = "gradio",
    feature = "inference",
    feature = "sheets",
    feature = "inspector"
))]

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/ui-pass/*.rs");
}
