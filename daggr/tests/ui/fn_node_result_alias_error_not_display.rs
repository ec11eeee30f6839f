use daggr::fn_node;

#[derive(Debug)]
struct Oops;

type Fallible<T> = Result<T, Oops>;

#[fn_node]
fn check(x: u32) -> Fallible<u32> {
    if x > 3 { Ok(x) } else { Err(Oops) }
}

fn main() {}
