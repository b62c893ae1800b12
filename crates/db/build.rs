// `embed_migrations!` reads the migrations at compile time but cargo only
// tracks the files it included: a new migration folder would not rebuild
// this crate without this line (cargo scans a directory recursively).
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
