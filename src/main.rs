//! The `portcullis` binary: everything lives in the library.

// jemalloc instead of the C library's allocator: rustls allocates and frees
// its record buffers on every handshake and as buffers drain, a pattern
// where glibc's malloc spent ~5% of a full mTLS handshake (malloc,
// realloc, malloc_consolidate). Measured on one pinned core: full
// handshake 267 -> 251 µs, resumed 138 -> 129 µs; keep-alive and bulk
// unchanged; idle memory +1 KiB per connection (docs/bench.md).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    portcullis::cli::main()
}
