use qmp_core::message::Inbound;
use qmp_core::scan::{Frame, Framer};
const S2C: &[u8] = include_bytes!("../tests/data/qemu-system-7.2.s2c");
fn main() {
    let classify = std::env::args().nth(1).is_some();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0usize;
    for _ in 0..200 {
        let mut framer = Framer::new(&mut buf[..]);
        let mut rest = S2C;
        while !rest.is_empty() {
            let fed = framer.feed(rest);
            rest = &rest[fed.consumed..];
            if let Some(Frame::Message(m)) = fed.frame {
                if classify {
                    if let Inbound::Return { .. } = m.classify() {
                        total += 1
                    }
                } else {
                    total += m.as_bytes().len()
                }
            }
        }
    }
    println!("{total}");
}
