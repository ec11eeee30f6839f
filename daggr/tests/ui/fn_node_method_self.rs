use daggr::fn_node;

struct Model;

impl Model {
    #[fn_node]
    fn predict(&self, x: u64) -> u64 {
        x
    }
}

fn main() {}
