//! Prints the OpenAPI document generated from the code:
//! `cargo run --bin openapi > openapi/openapi.json`.

fn main() {
    match widget_data::http::openapi().to_pretty_json() {
        Ok(json) => println!("{json}"),
        Err(e) => {
            eprintln!("openapi: {e}");
            std::process::exit(1);
        }
    }
}
