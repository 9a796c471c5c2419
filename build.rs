fn main() {
    // sqlx::migrate! embeds the files; a new migration must trigger a rebuild.
    println!("cargo:rerun-if-changed=migrations");
}
