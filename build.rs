//! `sqlx::migrate!` embeds `migrations/` and `include_dir!` the pages'
//! files (`src/http/pages/`) at compile time; rebuild when a file is
//! added to either, not only when one is edited.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=src/http/pages");
}
