use daggr::{fn_node, pipeline};

#[fn_node]
fn shout(word: String) -> String {
    word.to_uppercase()
}

pipeline! {
    struct Flow {
        inputs {
            words: Vec<String> = vec![],
            group size { width: u32 = 1 }
            group size { height: u32 = 1, group inner { depth: u32 = 1 } }
            group empty { }
        }
        nodes {
            #[map(skip_failed, collect_errors)]
            a = shout(word: each(words));
            #[map(skip_faild)]
            b = shout(word: each(words));
            #[map(skip_failed)]
            c = shout(word: "x");
            #[cache(never)]
            d = shout(word: each(each(words)));
            e = shout(word: each(words, words));
            f = [daggr::FnNode::sync("n", |a: u32, b: u32, c: u32| a + b + c)](width, height, depth);
        }
        outputs { w: Vec<String> = each(words) }
    }
}

fn main() {}
