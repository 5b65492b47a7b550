//! Physical frame allocation: a bitmap with one bit per 4 KiB frame.
//!
//! The bitmap covers frames `0..frame_count`; a set bit means free. It is built from the
//! boot memory map (only usable ranges become free) and hands out single frames or
//! contiguous, aligned runs, optionally below an address limit (the AP trampoline must
//! live under 1 MiB). It never touches the frames themselves.

use core::fmt;

pub const FRAME_SIZE: u64 = 4096;

/// Why an allocation or a free failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// No run of the requested shape is free.
    OutOfMemory { frames: u64, free: u64 },
    /// A freed frame was not allocated (double free or a frame never handed out).
    NotAllocated { frame: u64 },
    /// A frame number beyond the bitmap.
    OutOfRange { frame: u64 },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfMemory { frames, free } => write!(
                f,
                "out of physical memory: {frames} contiguous frame(s) requested, {free} free in all"
            ),
            Self::NotAllocated { frame } => {
                write!(f, "frame {:#x} freed but not allocated", frame * FRAME_SIZE)
            }
            Self::OutOfRange { frame } => {
                write!(
                    f,
                    "frame {:#x} is beyond physical memory",
                    frame * FRAME_SIZE
                )
            }
        }
    }
}

/// Words of bitmap needed to cover physical addresses below `max_addr`.
pub fn bitmap_words(max_addr: u64) -> usize {
    max_addr.div_ceil(FRAME_SIZE).div_ceil(64) as usize
}

/// The allocator state over a caller-provided bitmap.
pub struct FrameBitmap<'a> {
    bits: &'a mut [u64],
    frames: u64,
    free: u64,
    usable: u64,
    /// Where the next single-frame search starts.
    hint: u64,
}

impl<'a> FrameBitmap<'a> {
    /// An allocator with every frame used, covering `bits.len() * 64` frames.
    pub fn new(bits: &'a mut [u64]) -> Self {
        bits.fill(0);
        let frames = bits.len() as u64 * 64;
        FrameBitmap {
            bits,
            frames,
            free: 0,
            usable: 0,
            hint: 0,
        }
    }

    fn is_free(&self, frame: u64) -> bool {
        self.bits[(frame / 64) as usize] & (1 << (frame % 64)) != 0
    }

    fn set(&mut self, frame: u64, free: bool) {
        let word = &mut self.bits[(frame / 64) as usize];
        if free {
            *word |= 1 << (frame % 64);
        } else {
            *word &= !(1 << (frame % 64));
        }
    }

    /// Marks the whole frames inside `[start, end)` free (partial frames at the edges
    /// stay used). Counts them as usable memory.
    pub fn add_usable(&mut self, start: u64, end: u64) {
        let first = start.div_ceil(FRAME_SIZE);
        let last = (end / FRAME_SIZE).min(self.frames);
        for frame in first..last {
            if !self.is_free(frame) {
                self.set(frame, true);
                self.free += 1;
                self.usable += 1;
            }
        }
    }

    /// Takes the frames touching `[start, end)` out of the free pool (they stay counted
    /// as usable: someone uses them). Frames already used are left alone.
    pub fn reserve(&mut self, start: u64, end: u64) {
        let first = start / FRAME_SIZE;
        let last = end.div_ceil(FRAME_SIZE).min(self.frames);
        for frame in first..last {
            if self.is_free(frame) {
                self.set(frame, false);
                self.free -= 1;
            }
        }
    }

    /// Allocates one frame; returns its frame number.
    pub fn alloc(&mut self) -> Result<u64, FrameError> {
        let words = self.bits.len();
        let start_word = (self.hint / 64) as usize;
        for i in 0..words {
            let w = (start_word + i) % words;
            if self.bits[w] != 0 {
                let frame = w as u64 * 64 + u64::from(self.bits[w].trailing_zeros());
                self.set(frame, false);
                self.free -= 1;
                self.hint = frame;
                return Ok(frame);
            }
        }
        Err(FrameError::OutOfMemory {
            frames: 1,
            free: self.free,
        })
    }

    /// Allocates `count` contiguous frames starting at a multiple of `align` frames and
    /// ending at or below frame `limit` (exclusive); returns the first frame number.
    pub fn alloc_run(&mut self, count: u64, align: u64, limit: u64) -> Result<u64, FrameError> {
        let align = align.max(1);
        let limit = limit.min(self.frames);
        let oom = FrameError::OutOfMemory {
            frames: count,
            free: self.free,
        };
        if count == 0 {
            return Err(oom);
        }
        if count == 1 && align == 1 && limit == self.frames {
            // Any one frame: the hinted search, which does not rescan used memory.
            return self.alloc();
        }
        let mut start = 0;
        while start + count <= limit {
            match (start..start + count).rev().find(|&f| !self.is_free(f)) {
                // Restart just past the used frame, realigned, and past every wholly
                // used word after it (a scan of used memory costs a word per 64 frames).
                Some(used) => {
                    start = (used + 1).next_multiple_of(align);
                    while start < limit && self.bits[(start / 64) as usize] == 0 {
                        start = (start / 64 + 1) * 64;
                        start = start.next_multiple_of(align);
                    }
                }
                None => {
                    for f in start..start + count {
                        self.set(f, false);
                    }
                    self.free -= count;
                    return Ok(start);
                }
            }
        }
        Err(oom)
    }

    /// Returns `count` frames starting at `first` to the pool.
    pub fn free_run(&mut self, first: u64, count: u64) -> Result<(), FrameError> {
        let end = first
            .checked_add(count)
            .ok_or(FrameError::OutOfRange { frame: first })?;
        if end > self.frames {
            return Err(FrameError::OutOfRange { frame: end - 1 });
        }
        if let Some(frame) = (first..end).find(|&f| self.is_free(f)) {
            return Err(FrameError::NotAllocated { frame });
        }
        for f in first..end {
            self.set(f, true);
        }
        self.free += count;
        Ok(())
    }

    /// Frames currently free.
    pub fn free_frames(&self) -> u64 {
        self.free
    }

    /// One past the highest frame the bitmap covers.
    pub fn end_frame(&self) -> u64 {
        self.frames
    }

    /// Frames the memory map called usable (free now or handed out since).
    pub fn usable_frames(&self) -> u64 {
        self.usable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn with_bitmap<R>(max: u64, f: impl FnOnce(&mut FrameBitmap<'_>) -> R) -> R {
        let mut words = vec![0u64; bitmap_words(max)];
        let mut fb = FrameBitmap::new(&mut words);
        f(&mut fb)
    }

    #[test]
    fn usable_ranges_and_partial_frames() {
        with_bitmap(16 * MIB, |fb| {
            fb.add_usable(0x1000, 0x9f000);
            fb.add_usable(MIB + 0x800, 2 * MIB); // first partial frame excluded
            assert_eq!(fb.usable_frames(), 0x9e + 255);
            assert_eq!(fb.free_frames(), fb.usable_frames());
            fb.reserve(MIB, MIB + 0x3000); // partial frames included
            assert_eq!(fb.free_frames(), fb.usable_frames() - 2);
            assert_eq!(fb.usable_frames(), 0x9e + 255);
        });
    }

    #[test]
    fn runs_after_much_used_memory_skip_whole_words_and_stay_exact() {
        with_bitmap(64 * MIB, |fb| {
            fb.add_usable(0, 64 * MIB);
            // 1,000 single frames (through the hinted path), then a hole at 700.
            for _ in 0..1000 {
                fb.alloc_run(1, 1, u64::MAX).unwrap();
            }
            fb.free_run(700, 3).unwrap();
            // Three fit in the hole exactly; four do not, and must start aligned after.
            assert_eq!(fb.alloc_run(4, 4, u64::MAX), Ok(1000));
            assert_eq!(fb.alloc_run(3, 1, u64::MAX), Ok(700));
            assert_eq!(fb.alloc_run(2, 512, u64::MAX), Ok(1024));
            assert_eq!(fb.alloc_run(1, 2, u64::MAX), Ok(1004));
            // A limit below everything free.
            assert!(fb.alloc_run(1, 2, 1000).is_err());
        });
    }

    #[test]
    fn single_frames_are_distinct_and_run_out_cleanly() {
        with_bitmap(MIB, |fb| {
            fb.add_usable(0x10000, 0x20000); // 16 frames
            let mut got: Vec<u64> = (0..16).map(|_| fb.alloc().unwrap()).collect();
            got.sort();
            got.dedup();
            assert_eq!(got.len(), 16);
            assert!(got.iter().all(|&f| (0x10..0x20).contains(&f)));
            assert_eq!(
                fb.alloc(),
                Err(FrameError::OutOfMemory { frames: 1, free: 0 })
            );
            fb.free_run(0x12, 1).unwrap();
            assert_eq!(fb.alloc(), Ok(0x12));
        });
    }

    #[test]
    fn runs_respect_alignment_limits_and_holes() {
        with_bitmap(64 * MIB, |fb| {
            fb.add_usable(0, 64 * MIB);
            fb.reserve(0x1000, 0x2000); // a hole at frame 1
            let run = fb.alloc_run(4, 1, u64::MAX).unwrap();
            assert_eq!(run, 2);
            let aligned = fb.alloc_run(512, 512, u64::MAX).unwrap();
            assert_eq!(aligned % 512, 0);
            assert_eq!(aligned, 512);
            let low = fb.alloc_run(1, 1, 0x100).unwrap();
            assert!(low < 0x100);
            assert_eq!(
                fb.alloc_run(1, 1, 2),
                Err(FrameError::OutOfMemory {
                    frames: 1,
                    free: fb.free_frames()
                })
            );
            assert!(fb.alloc_run(0, 1, u64::MAX).is_err());
        });
    }

    #[test]
    fn double_free_and_range_errors() {
        with_bitmap(MIB, |fb| {
            fb.add_usable(0, MIB);
            let f = fb.alloc_run(2, 1, u64::MAX).unwrap();
            fb.free_run(f, 2).unwrap();
            assert_eq!(
                fb.free_run(f, 1),
                Err(FrameError::NotAllocated { frame: f })
            );
            assert!(matches!(
                fb.free_run(1 << 40, 1),
                Err(FrameError::OutOfRange { .. })
            ));
            assert!(matches!(
                fb.free_run(u64::MAX, 2),
                Err(FrameError::OutOfRange { .. })
            ));
        });
        assert!(
            FrameError::OutOfMemory { frames: 4, free: 1 }
                .to_string()
                .contains("out of physical memory")
        );
    }

    #[test]
    fn random_alloc_free_keeps_counts_consistent() {
        // A small deterministic LCG drives a mixed workload; the bitmap's counts must
        // always match an independent record of what is handed out.
        with_bitmap(8 * MIB, |fb| {
            fb.add_usable(0x3000, 8 * MIB - 0x5000);
            let total = fb.free_frames();
            let mut held: Vec<(u64, u64)> = Vec::new();
            let mut seed = 0x1234_5678_u64;
            let mut next = || {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                seed >> 33
            };
            for _ in 0..5000 {
                if next() % 3 == 0 && !held.is_empty() {
                    let i = (next() % held.len() as u64) as usize;
                    let (f, n) = held.swap_remove(i);
                    fb.free_run(f, n).unwrap();
                } else {
                    let n = 1 + next() % 16;
                    if let Ok(f) = fb.alloc_run(n, 1 << (next() % 4), u64::MAX) {
                        assert!(
                            held.iter().all(|&(g, m)| f + n <= g || g + m <= f),
                            "overlap"
                        );
                        held.push((f, n));
                    }
                }
                let out: u64 = held.iter().map(|&(_, n)| n).sum();
                assert_eq!(fb.free_frames() + out, total);
            }
        });
    }
}
