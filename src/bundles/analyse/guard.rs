//! Runs the analysis where a deeply nested bundle cannot overflow a stack.
//!
//! oxc's parser, its semantic pass and our visitor recurse once per level
//! of nesting with no depth limit (oxc-project/oxc#21953, #24375), and a
//! stack overflow aborts the whole process: a 500 KB bundle of `(` would
//! take the service down. So the work runs on a thread of its own whose
//! stack grows with the input, big enough for the deepest nesting that
//! many bytes can spell. The stack is reserved address space; memory backs
//! only what the recursion touches, so an ordinary bundle costs the few
//! hundred kilobytes it always did, and a hostile one at most what its
//! nesting needs (about 600 MB for 500 KB of `(` in a release build).
//!
//! Measured worst cases, stack per byte of source: one `(` or `[` per
//! nesting level costs about 1.2 KB in a release build and 2.4 KB in a
//! debug one; every other shape tried (objects, templates, functions,
//! blocks, `if`/`else if`, arrows, unary and binary chains, calls, member
//! chains) costs less per byte. The constants below leave a margin of 1.6.

/// Stack for the statements and expressions of an ordinary bundle.
const BASE_STACK_BYTES: usize = 8 << 20;

/// Stack per byte of source, for the deepest nesting it can hold.
const STACK_BYTES_PER_SOURCE_BYTE: usize = if cfg!(debug_assertions) { 4096 } else { 2048 };

/// Stack for the analysis of `len` bytes of source.
fn stack_bytes(len: usize) -> usize {
    BASE_STACK_BYTES.saturating_add(len.saturating_mul(STACK_BYTES_PER_SOURCE_BYTE))
}

/// `work(source)` on a thread with room for it; `None` when no such thread
/// could be made (the address space was refused) or the work panicked.
pub fn run<T: Send>(source: &str, work: impl FnOnce(&str) -> T + Send) -> Option<T> {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("bundle-analyse".to_owned())
            .stack_size(stack_bytes(source.len()))
            .spawn_scoped(scope, || work(source))
            .ok()?
            .join()
            .ok()
    })
}
