// `embed_migrations!` does not notice a new migration on its own: rebuild when the folder changes.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
