//! Parses config files and prints diagnostics (a development aid; `rsips -c` is the real entry).
#![allow(clippy::print_stdout)]

fn main() {
    for path in std::env::args().skip(1) {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let mut sm = cfg::SourceMap::new();
        let parsed = cfg::parse(&mut sm, std::path::Path::new(&path), text);
        println!(
            "{path}: {} items, {} diagnostics",
            parsed.config.items.len(),
            parsed.diagnostics.len()
        );
        for d in &parsed.diagnostics {
            print!("{}", d.render(&sm));
        }
    }
}
