//! MSB-first bit reader with Exp-Golomb codes (ITU-T H.264 §9.1), over RBSP bytes.

use super::CodecError;

/// Reads bits MSB first from a byte slice. Every read is bounds-checked.
pub struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8], what: &'static str) -> Self {
        Self { data, pos: 0, what }
    }

    pub fn bit_position(&self) -> usize {
        self.pos
    }

    fn truncated(&self) -> CodecError {
        CodecError::Truncated {
            what: self.what,
            bit_offset: self.pos,
        }
    }

    pub fn read_bit(&mut self) -> Result<bool, CodecError> {
        let byte = *self
            .data
            .get(self.pos / 8)
            .ok_or_else(|| self.truncated())?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Ok(bit == 1)
    }

    /// Reads `n` ≤ 64 bits as an unsigned integer.
    pub fn read_bits(&mut self, n: u32) -> Result<u64, CodecError> {
        debug_assert!(n <= 64);
        if self.pos + n as usize > self.data.len() * 8 {
            return Err(self.truncated());
        }
        let mut v = 0u64;
        for _ in 0..n {
            v = (v << 1) | u64::from(self.read_bit()?);
        }
        Ok(v)
    }

    pub fn skip_bits(&mut self, n: usize) -> Result<(), CodecError> {
        if self.pos + n > self.data.len() * 8 {
            return Err(self.truncated());
        }
        self.pos += n;
        Ok(())
    }

    /// ue(v): unsigned Exp-Golomb. Values past 32 leading zeros are rejected
    /// (no conforming syntax element needs them).
    pub fn read_ue(&mut self) -> Result<u32, CodecError> {
        let mut zeros = 0u32;
        while !self.read_bit()? {
            zeros += 1;
            if zeros > 31 {
                return Err(CodecError::Malformed {
                    what: self.what,
                    message: "Exp-Golomb code longer than 32 bits",
                });
            }
        }
        let rest = self.read_bits(zeros)?;
        Ok(((1u64 << zeros) - 1 + rest) as u32)
    }

    /// se(v): signed Exp-Golomb.
    pub fn read_se(&mut self) -> Result<i32, CodecError> {
        let k = i64::from(self.read_ue()?);
        let v = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        Ok(v as i32)
    }
}

/// Removes emulation-prevention bytes (`00 00 03` → `00 00`, H.264 §7.4.1).
pub fn rbsp_from_nal(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0usize;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        if b == 0 {
            zeros += 1;
        } else {
            zeros = 0;
        }
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_golomb_values() {
        // 1 → 0, 010 → 1, 011 → 2, 00100 → 3
        let data = [0b1010_0110, 0b0100_0000];
        let mut r = BitReader::new(&data, "test");
        assert_eq!(r.read_ue().unwrap(), 0);
        assert_eq!(r.read_ue().unwrap(), 1);
        assert_eq!(r.read_ue().unwrap(), 2);
        assert_eq!(r.read_ue().unwrap(), 3);
    }

    #[test]
    fn signed_exp_golomb() {
        // 010 → +1, 011 → -1
        let data = [0b0100_1100];
        let mut r = BitReader::new(&data, "test");
        assert_eq!(r.read_se().unwrap(), 1);
        assert_eq!(r.read_se().unwrap(), -1);
    }

    #[test]
    fn truncation_is_an_error() {
        let data = [0u8; 2];
        let mut r = BitReader::new(&data, "test");
        assert!(matches!(r.read_ue(), Err(CodecError::Truncated { .. })));
        assert!(BitReader::new(&[], "t").read_bit().is_err());
    }

    #[test]
    fn emulation_prevention_removed() {
        assert_eq!(rbsp_from_nal(&[0, 0, 3, 1, 0, 0, 3]), vec![0, 0, 1, 0, 0]);
    }
}
