use daggr::pipeline;

pipeline! {
    struct Flow {
        inputs { text: String }
        nodes {}
    }
}

fn main() {}
