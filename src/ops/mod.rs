//! Running camgate as an appliance: systemd integration, log output and
//! configuration reload on SIGHUP.

pub mod logging;
pub mod reload;
pub mod system;
pub mod systemd;

/// Makes glibc give large freed blocks back to the kernel.
///
/// glibc serves allocations above `M_MMAP_THRESHOLD` with their own mmap
/// and unmaps them on free, but by default it raises that threshold to the
/// size of any such block once freed (up to 32 MiB). After the first
/// sign-in, Argon2's 19 MiB working memory then comes from the blocking
/// thread's heap arena and stays there: measured, 20 sign-ins left the
/// gateway at 266 MB RSS. A fixed 1 MiB threshold turns the adjustment off,
/// so big, short-lived buffers (Argon2, large HTTP bodies) are returned at
/// once; smaller ones are unaffected. (Other C libraries: nothing to do.)
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets a malloc parameter; called before any
        // thread is started.
        let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20) };
        if ok != 1 {
            tracing::warn!("mallopt(M_MMAP_THRESHOLD) refused; large blocks may stay resident");
        }
    }
}
