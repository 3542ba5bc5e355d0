//! What every weft plugin in this workspace links: an arena allocator.
//!
//! weft makes a fresh instance for every call, so a plugin's heap never
//! lives long. Rust's default wasm allocator grows linear memory for its
//! first allocation of every instance, and each growth costs the host a
//! system call; a bump arena in the module's own zeroed data needs none.
//! Allocations past the arena go to the system allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;

const ARENA_BYTES: usize = 256 << 10;

#[repr(C, align(16))]
struct Arena {
    bytes: UnsafeCell<[u8; ARENA_BYTES]>,
    next: UnsafeCell<usize>,
}

// SAFETY: wasm32 plugins are single-threaded.
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena {
    bytes: UnsafeCell::new([0; ARENA_BYTES]),
    next: UnsafeCell::new(0),
};

struct BumpThenSystem;

impl BumpThenSystem {
    fn base() -> *mut u8 {
        ARENA.bytes.get().cast()
    }

    fn owns(p: *mut u8) -> bool {
        let base = Self::base() as usize;
        (base..base + ARENA_BYTES).contains(&(p as usize))
    }
}

unsafe impl GlobalAlloc for BumpThenSystem {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: single-threaded; `next` is only touched here and in realloc.
        let next = unsafe { &mut *ARENA.next.get() };
        let base = Self::base() as usize;
        let start = (base + *next + layout.align() - 1) & !(layout.align() - 1);
        let end = start + layout.size();
        if end <= base + ARENA_BYTES {
            *next = end - base;
            start as *mut u8
        } else {
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        if Self::owns(p) {
            // Only the newest block is given back; the rest goes with the instance.
            let next = unsafe { &mut *ARENA.next.get() };
            if p as usize + layout.size() == Self::base() as usize + *next {
                *next -= layout.size();
            }
        } else {
            unsafe { System.dealloc(p, layout) }
        }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if Self::owns(p) {
            let next = unsafe { &mut *ARENA.next.get() };
            let base = Self::base() as usize;
            // The newest block grows in place while it fits.
            if p as usize + layout.size() == base + *next && p as usize + new_size <= base + ARENA_BYTES {
                *next = p as usize + new_size - base;
                return p;
            }
            let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
            let q = unsafe { self.alloc(new_layout) };
            if !q.is_null() {
                unsafe { std::ptr::copy_nonoverlapping(p, q, layout.size().min(new_size)) };
                unsafe { self.dealloc(p, layout) };
            }
            q
        } else {
            unsafe { System.realloc(p, layout, new_size) }
        }
    }
}

#[global_allocator]
static ALLOCATOR: BumpThenSystem = BumpThenSystem;
