//! Builds a small C library around Xen's own `<xen/io/ring.h>` macros at run
//! time and loads it with `dlopen`, so tests and the benchmark can put C and
//! Rust ends on one page. Shared by `tests/c_interop.rs` and
//! `examples/bench.rs`.
#![allow(dead_code)]

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The C side. Request/response types and the values the front puts in a
/// request are the same on both sides (see `req_a`, `req_b`).
pub const C_SOURCE: &str = r#"
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* ring.h wants the xen_*mb() barriers from the includer (interface >= 3.2.8).
   Same strength as the Rust crate's fences. */
#define __XEN_INTERFACE_VERSION__ 0x00040e00
#define xen_mb()  __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define xen_rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define xen_wmb() __atomic_thread_fence(__ATOMIC_RELEASE)
#include <xen/io/ring.h>

#define PAGE 4096

struct test_req { uint64_t id; uint32_t a; uint32_t b; };
struct test_rsp { uint64_t id; uint32_t sum; uint32_t pad; };
DEFINE_RING_TYPES(test, struct test_req, struct test_rsp);

static inline uint32_t req_a(uint64_t id) { return (uint32_t)(id * 2654435761u); }
static inline uint32_t req_b(uint64_t id) { return (uint32_t)(id >> 3) ^ 0xdeadbeefu; }

void c_layout(uint64_t out[9]) {
    out[0] = offsetof(struct test_sring, req_prod);
    out[1] = offsetof(struct test_sring, req_event);
    out[2] = offsetof(struct test_sring, rsp_prod);
    out[3] = offsetof(struct test_sring, rsp_event);
    out[4] = offsetof(struct test_sring, pvt);
    out[5] = offsetof(struct test_sring, __pad);
    out[6] = offsetof(struct test_sring, ring);
    out[7] = sizeof(union test_sring_entry);
    out[8] = __CONST_RING_SIZE(test, PAGE);
}

void c_free(void *p) { free(p); }

/* Front: initialise the shared page and attach at `start`; the producers
   and events are moved to `start` / `start + 1` as a fresh ring would have. */
test_front_ring_t *c_front_new(void *page, uint32_t start) {
    test_sring_t *s = page;
    test_front_ring_t *r = malloc(sizeof *r);
    SHARED_RING_INIT(s);
    s->req_prod = s->rsp_prod = start;
    s->req_event = s->rsp_event = start + 1;
    FRONT_RING_ATTACH(r, s, start, PAGE);
    return r;
}

test_back_ring_t *c_back_new(void *page, uint32_t start) {
    test_back_ring_t *r = malloc(sizeof *r);
    BACK_RING_ATTACH(r, (test_sring_t *)page, start, PAGE);
    return r;
}

uint32_t c_front_send(test_front_ring_t *r, uint64_t first_id, uint32_t n, int *notify) {
    uint32_t i;
    int nt;
    for (i = 0; i < n && !RING_FULL(r); i++) {
        struct test_req *q = RING_GET_REQUEST(r, r->req_prod_pvt);
        uint64_t id = first_id + i;
        q->id = id;
        q->a = req_a(id);
        q->b = req_b(id);
        r->req_prod_pvt++;
    }
    RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(r, nt);
    *notify = nt;
    return i;
}

uint32_t c_front_collect(test_front_ring_t *r, uint32_t max, uint64_t *ids, uint32_t *sums) {
    RING_IDX rp = r->sring->rsp_prod;
    uint32_t k = 0;
    xen_rmb();
    if (RING_RESPONSE_PROD_OVERFLOW(r, rp))
        return UINT32_MAX;
    while (r->rsp_cons != rp && k < max) {
        struct test_rsp rsp;
        RING_COPY_RESPONSE(r, r->rsp_cons, &rsp);
        ids[k] = rsp.id;
        sums[k] = rsp.sum;
        k++;
        r->rsp_cons++;
    }
    return k;
}

int c_front_final_check(test_front_ring_t *r) {
    int more;
    RING_FINAL_CHECK_FOR_RESPONSES(r, more);
    return more != 0;
}

uint32_t c_back_serve(test_back_ring_t *r, uint32_t max, int *notify) {
    RING_IDX rp = r->sring->req_prod;
    uint32_t k = 0;
    int nt;
    xen_rmb();
    if (RING_REQUEST_PROD_OVERFLOW(r, rp))
        return UINT32_MAX;
    while (r->req_cons != rp && k < max && !RING_REQUEST_CONS_OVERFLOW(r, r->req_cons)) {
        struct test_req q;
        struct test_rsp *s;
        RING_COPY_REQUEST(r, r->req_cons, &q);
        r->req_cons++;
        s = RING_GET_RESPONSE(r, r->rsp_prod_pvt);
        s->id = q.id;
        s->sum = q.a + q.b;
        s->pad = 0;
        r->rsp_prod_pvt++;
        k++;
    }
    RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(r, nt);
    *notify = nt;
    return k;
}

int c_back_final_check(test_back_ring_t *r) {
    int more;
    RING_FINAL_CHECK_FOR_REQUESTS(r, more);
    return more != 0;
}

/* n request/response round trips, `batch` requests per push, both ends in C.
   Returns the sum of all response sums; *notifies counts notifications. */
uint64_t c_bench(void *page, uint64_t n, uint32_t batch, uint64_t *notifies) {
    test_front_ring_t f;
    test_back_ring_t b;
    uint64_t sent = 0, done = 0, total = 0, nn = 0;
    XEN_FRONT_RING_INIT(&f, (test_sring_t *)page, PAGE);
    BACK_RING_INIT(&b, (test_sring_t *)page, PAGE);
    while (done < n) {
        RING_IDX rp;
        uint32_t k = 0;
        int nt, more;
        while (k < batch && sent < n && !RING_FULL(&f)) {
            struct test_req *q = RING_GET_REQUEST(&f, f.req_prod_pvt);
            q->id = sent;
            q->a = req_a(sent);
            q->b = req_b(sent);
            f.req_prod_pvt++;
            sent++;
            k++;
        }
        RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&f, nt);
        nn += nt;
        rp = b.sring->req_prod;
        xen_rmb();
        while (b.req_cons != rp) {
            struct test_req q;
            struct test_rsp *s;
            RING_COPY_REQUEST(&b, b.req_cons, &q);
            b.req_cons++;
            s = RING_GET_RESPONSE(&b, b.rsp_prod_pvt);
            s->id = q.id;
            s->sum = q.a + q.b;
            s->pad = 0;
            b.rsp_prod_pvt++;
        }
        RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(&b, nt);
        nn += nt;
        RING_FINAL_CHECK_FOR_REQUESTS(&b, more);
        rp = f.sring->rsp_prod;
        xen_rmb();
        while (f.rsp_cons != rp) {
            struct test_rsp rsp;
            RING_COPY_RESPONSE(&f, f.rsp_cons, &rsp);
            total += rsp.sum;
            f.rsp_cons++;
            done++;
        }
        RING_FINAL_CHECK_FOR_RESPONSES(&f, more);
    }
    *notifies = nn;
    return total;
}
"#;

/// The request fields the C front computes, for the Rust side to match.
pub fn req_a(id: u64) -> u32 {
    id.wrapping_mul(2654435761) as u32
}
/// See [`req_a`].
pub fn req_b(id: u64) -> u32 {
    ((id >> 3) as u32) ^ 0xdead_beef
}

/// Opaque C ring structs.
pub type CFront = c_void;
/// Opaque C ring structs.
pub type CBack = c_void;

type T0 = unsafe extern "C" fn(*mut u64);
type T1 = unsafe extern "C" fn(*mut c_void);
type T2 = unsafe extern "C" fn(*mut u8, u32) -> *mut CFront;
type T3 = unsafe extern "C" fn(*mut u8, u32) -> *mut CBack;
type T4 = unsafe extern "C" fn(*mut CFront, u64, u32, *mut c_int) -> u32;
type T5 = unsafe extern "C" fn(*mut CFront, u32, *mut u64, *mut u32) -> u32;
type T6 = unsafe extern "C" fn(*mut CFront) -> c_int;
type T7 = unsafe extern "C" fn(*mut CBack, u32, *mut c_int) -> u32;
type T8 = unsafe extern "C" fn(*mut CBack) -> c_int;
type T9 = unsafe extern "C" fn(*mut u8, u64, u32, *mut u64) -> u64;

/// Entry points of the loaded library.
pub struct CShim {
    pub layout: T0,
    pub free: T1,
    pub front_new: T2,
    pub back_new: T3,
    pub front_send: T4,
    pub front_collect: T5,
    pub front_final_check: T6,
    pub back_serve: T7,
    pub back_final_check: T8,
    pub bench: T9,
}

unsafe extern "C" {
    fn dlopen(filename: *const c_char, flags: c_int) -> *mut c_void;
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
    fn dlerror() -> *mut c_char;
}
const RTLD_NOW: c_int = 2;

const MISSING: &str = "could not build the C side against <xen/io/ring.h>: \
    install the Debian package `libxen-dev` (it provides /usr/include/xen/io/ring.h) \
    and a C compiler (`cc`, e.g. Debian `gcc`)";

fn build() -> Result<CShim, String> {
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "oxen-ring-cshim-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let src = dir.join("shim.c");
    let lib = dir.join("libshim.so");
    std::fs::write(&src, C_SOURCE).map_err(|e| format!("{}: {e}", src.display()))?;
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .args(["-O2", "-fPIC", "-shared", "-Wall", "-o"])
        .arg(&lib)
        .arg(&src)
        .output()
        .map_err(|e| format!("{MISSING}\n(running `{cc}` failed: {e})"))?;
    if !out.status.success() {
        return Err(format!(
            "{MISSING}\n`{cc}` said:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let path = CString::new(lib.to_str().ok_or("non-UTF-8 temp path")?).unwrap();
    // SAFETY: a NUL-terminated path to the library we just built; its
    // initialisers do nothing.
    let handle = unsafe { dlopen(path.as_ptr(), RTLD_NOW) };
    if handle.is_null() {
        // SAFETY: dlerror returns a NUL-terminated message after a failure.
        let msg = unsafe { CStr::from_ptr(dlerror()) };
        return Err(format!(
            "dlopen {}: {}",
            lib.display(),
            msg.to_string_lossy()
        ));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let sym = |name: &str| -> Result<*mut c_void, String> {
        let c = CString::new(name).unwrap();
        // SAFETY: valid handle and NUL-terminated name.
        let p = unsafe { dlsym(handle, c.as_ptr()) };
        if p.is_null() {
            Err(format!("missing symbol {name}"))
        } else {
            Ok(p)
        }
    };
    macro_rules! f {
        ($name:literal, $ty:ty) => {
            // SAFETY: the symbol is the C function of that name in C_SOURCE,
            // whose prototype matches the field's type.
            unsafe { std::mem::transmute::<*mut c_void, $ty>(sym($name)?) }
        };
    }
    Ok(CShim {
        layout: f!("c_layout", T0),
        free: f!("c_free", T1),
        front_new: f!("c_front_new", T2),
        back_new: f!("c_back_new", T3),
        front_send: f!("c_front_send", T4),
        front_collect: f!("c_front_collect", T5),
        front_final_check: f!("c_front_final_check", T6),
        back_serve: f!("c_back_serve", T7),
        back_final_check: f!("c_back_final_check", T8),
        bench: f!("c_bench", T9),
    })
}

/// The C library, built once per process. Panics (failing the test) with
/// a message naming `libxen-dev` if the header or compiler is missing.
pub fn shim() -> &'static CShim {
    static SHIM: OnceLock<Result<CShim, String>> = OnceLock::new();
    match SHIM.get_or_init(build) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}
