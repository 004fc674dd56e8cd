//! Thin binary: parse the command line, run the library, turn the outcome into an exit code.

fn main() {
    std::process::exit(executor::cli::main());
}
