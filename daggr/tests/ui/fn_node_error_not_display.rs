use daggr::fn_node;

#[derive(Debug)]
struct Oops;

#[fn_node]
fn check(x: u32) -> Result<u32, Oops> {
    if x > 3 { Ok(x) } else { Err(Oops) }
}

fn main() {}
