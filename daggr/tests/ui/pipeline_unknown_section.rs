use daggr::pipeline;

pipeline! {
    struct Flow {
        node {}
    }
}

fn main() {
    // The type is still declared: no follow-up error here.
    let _ = Flow::graph();
}
