//! Profiling driver: frames (and classifies) a recorded transcript many
//! times. `ITERS=n prof [c|agent|qga]` (c: classify as a client; agent:
//! validate the client-to-server transcript as requests; qga: the guest
//! agent's replies).
use qmp_core::message::Inbound;
use qmp_core::scan::{Frame, Framer};
const S2C: &[u8] = include_bytes!("../tests/data/qemu-system-7.2.s2c");
const C2S: &[u8] = include_bytes!("../tests/data/qemu-system-7.2.c2s");
const QGA: &[u8] = include_bytes!("../tests/data/qga-7.2.s2c");
fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let (data, scale) = match mode.as_str() {
        "agent" => (C2S, 300),
        "qga" => (QGA, 50),
        _ => (S2C, 1),
    };
    let iters: usize = std::env::var("ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000)
        * scale;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0usize;
    for _ in 0..iters {
        let mut framer = Framer::new(&mut buf[..]);
        let mut rest = data;
        while !rest.is_empty() {
            let fed = framer.feed(rest);
            rest = &rest[fed.consumed..];
            if let Some(Frame::Message(m)) = fed.frame {
                match mode.as_str() {
                    "agent" => total += usize::from(m.request(true).is_ok()),
                    "" => total += m.as_bytes().len(),
                    _ => {
                        if let Inbound::Return { .. } = m.classify() {
                            total += 1
                        }
                    }
                }
            }
        }
    }
    println!("{total}");
}
