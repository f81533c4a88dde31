use qmp_core::scan::*;
fn main() {
    let input = std::env::args().nth(1).unwrap();
    let mut buf = [0u8; 256];
    let mut f = Framer::new(&mut buf[..]);
    let mut rest = input.as_bytes();
    while !rest.is_empty() {
        let fed = f.feed(rest);
        println!("consumed {} frame {:?}", fed.consumed, fed.frame);
        rest = &rest[fed.consumed..];
    }
}
