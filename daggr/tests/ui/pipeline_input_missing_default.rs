use daggr::pipeline;

pipeline! {
    struct Flow {
        inputs { text: String }
        nodes {}
    }
}

fn main() {
    // The type and its setter are still declared: no follow-up error here.
    let _ = Flow::set_text;
}
