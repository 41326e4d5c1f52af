import BatonVRRP
import Testing

@Suite struct VRRPVersionTests {
    @Test func theVersionNibbleIsTheWireValue() {
        #expect(VRRPVersion(rawValue: 2) == .v2)
        #expect(VRRPVersion(rawValue: 3) == .v3)
        #expect(VRRPVersion(rawValue: 4) == nil)
    }
}
