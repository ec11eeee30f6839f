use daggr::pipeline;

pipeline! {
    struct Flow {
        inputs { name: String = "x".to_string() }
        nodes {
            shout = [|a: String| a.to_uppercase()](name);
        }
    }
}

fn main() {}
