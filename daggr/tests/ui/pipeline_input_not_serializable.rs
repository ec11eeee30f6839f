use daggr::pipeline;

pipeline! {
    struct Flow {
        inputs { data: std::rc::Rc<u8> = std::rc::Rc::new(1) }
        nodes {}
        outputs { data: std::rc::Rc<u8> = data }
    }
}

fn main() {}
