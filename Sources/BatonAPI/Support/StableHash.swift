/// FNV-1a, 64-bit, over UTF-8: a hash that is the same in every process and every run (unlike
/// `Hasher`), for names derived from content (events, token objects, tunnel allocations).
/// Not cryptographic.
public enum StableHash {
    public static func fnv1a(_ s: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return h
    }
}
