use daggr::pipeline;

pipeline! {
    struct Flow {
        node {}
    }
}

fn main() {}
