//! `qmp demo`: replays a real recorded QEMU session (qemu-system-x86_64 7.2)
//! through qmp-core's framer and classifiers and prints what each side said.
//! To be replaced by a live agent/client demo.

use qmp_core::message::Inbound;
use qmp_core::scan::{Frame, Framer};

const C2S: &[u8] = include_bytes!("../../../../qmp-core/tests/data/qemu-system-7.2.c2s");
const S2C: &[u8] = include_bytes!("../../../../qmp-core/tests/data/qemu-system-7.2.s2c");

/// Frames `data` into (message text or error text) lines.
fn frames(data: &[u8], each: &mut dyn FnMut(Result<qmp_core::scan::Message<'_>, String>)) {
    let mut buf = vec![0u8; 1 << 20];
    let mut framer = Framer::new(&mut buf[..]);
    let mut rest = data;
    while !rest.is_empty() {
        let fed = framer.feed(rest);
        rest = &rest[fed.consumed..];
        match fed.frame {
            Some(Frame::Message(m)) => each(Ok(m)),
            Some(Frame::Error(e)) => each(Err(e.to_string())),
            _ => {}
        }
    }
}

fn short(bytes: &[u8], max: usize) -> String {
    let s = String::from_utf8_lossy(bytes);
    if s.len() > max {
        let cut = (0..=max)
            .rev()
            .find(|&i| s.is_char_boundary(i))
            .unwrap_or(0);
        format!("{}… ({} bytes)", &s[..cut], bytes.len())
    } else {
        s.into_owned()
    }
}

pub fn demo() {
    println!(
        "qmp demo: a recorded qemu-system-x86_64 7.2 session, framed and classified by qmp-core\n"
    );
    let mut requests = Vec::new();
    frames(C2S, &mut |m| match m {
        Ok(m) => match m.request(true) {
            Ok(r) => requests.push(format!(
                "{} {}{}",
                if r.exec == qmp_core::message::Exec::ExecOob {
                    "exec-oob"
                } else {
                    "execute"
                },
                r.name,
                r.id.map(|id| format!(" (id {})", short(id.as_bytes(), 40)))
                    .unwrap_or_default()
            )),
            Err(bad) => requests.push(format!("invalid request: {}", bad.error)),
        },
        Err(e) => requests.push(format!("bad JSON: {e}")),
    });
    let mut sent = requests.into_iter();
    frames(S2C, &mut |m| {
        let Ok(m) = m else { return };
        let line = match m.classify() {
            Inbound::Greeting(g) => {
                let caps: Vec<String> = g.capabilities().map(|c| c.to_string()).collect();
                format!(
                    "greeting: QEMU {}.{}.{}, capabilities [{}]",
                    g.version.0,
                    g.version.1,
                    g.version.2,
                    caps.join(", ")
                )
            }
            Inbound::Return { value, id } => format!(
                "return{}: {}",
                id.map(|i| format!(" (id {})", short(i.as_bytes(), 40)))
                    .unwrap_or_default(),
                short(value.as_bytes(), 100)
            ),
            Inbound::Error { class, desc, id } => format!(
                "error{}: {class}: {desc}",
                id.map(|i| format!(" (id {})", short(i.as_bytes(), 40)))
                    .unwrap_or_default()
            ),
            Inbound::Event(e) => format!(
                "event {}{}{}",
                e.name,
                e.timestamp
                    .map(|t| format!(" at {}.{:06}", t.seconds, t.microseconds))
                    .unwrap_or_default(),
                e.data
                    .map(|d| format!(" {}", short(d.as_bytes(), 80)))
                    .unwrap_or_default()
            ),
            other => format!("unknown: {other:?}"),
        };
        let ends_turn = !line.starts_with("event");
        println!("  ← {line}");
        // The recorded client sent its next command after each reply (and
        // after the greeting): events caused by it follow the request.
        if ends_turn {
            if let Some(req) = sent.next() {
                println!("  → {req}");
            }
        }
    });
    println!("\n(the live agent and client demo arrives with qmp-std; see README)");
}
