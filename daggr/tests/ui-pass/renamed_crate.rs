//! `crate = path`: the macros work when daggr is renamed (`dag = { package = "daggr" }`).
extern crate daggr as dag;

mod inner {
    #[dag::fn_node(crate = dag)]
    pub fn shout(text: String) -> String {
        text.to_uppercase()
    }

    #[dag::fn_node(crate = "::dag")]
    pub fn count(text: String) -> usize {
        text.len()
    }

    dag::pipeline! {
        #[daggr(crate = dag)]
        /// A pipeline whose macros see daggr as `dag`.
        pub struct Renamed {
            inputs { text: String = "hi".to_string() }
            nodes {
                loud = shout(text: text);
                n = count(text: loud);
            }
            outputs { n: usize = n }
        }
    }
}

fn main() {
    let _ = inner::Renamed::graph_ir();
}
