//! Compile-time errors of `#[fn_node]` and `pipeline!` (trybuild): each case's `.stderr`
//! shows the message and the user's token it points at. `TRYBUILD=overwrite cargo test
//! --test ui` re-blesses them after a toolchain change; review the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/ui-pass/*.rs");
}
