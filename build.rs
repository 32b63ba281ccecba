//! `sqlx::migrate!` embeds `migrations/` at compile time; rebuild when a
//! migration is added, not only when one is edited.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
