import BatonAPI
import Foundation
import Testing

@Suite struct JSONCodecTests {
    @Test(arguments: [
        #"{"a":[1,-2,3.5,1e+300,true,false,null],"b":"x\"y\\z\n\t\u0001","c":{}}"#,
        #"{"s":"😀 é \ud83d\ude00","n":-0.25,"big":9223372036854775807}"#,
        #"[]"#, #""plain""#, #"0"#,
    ])
    func roundTripsThroughFoundationToo(text: String) throws {
        let mine = try JSONValue.parse(Data(text.utf8))
        let foundation = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
        #expect(mine == foundation)
        #expect(try JSONValue.parse(mine.jsonData()) == mine)
        #expect(try JSONDecoder().decode(JSONValue.self, from: mine.jsonData()) == mine)
    }

    @Test(arguments: [
        "", "{", "[1,]", "{\"a\":1,}", "{a:1}", "01", "1.", "-", "\"\u{01}\"", "\"\\x\"", "\"\\ud800\"",
        "tru", "nul", "[1] 2", "1e999", "\"\\u12\"",
    ])
    func refusesMalformedJSON(text: String) {
        #expect(throws: (any Error).self) { try JSONValue.parse(Data(text.utf8)) }
    }

    @Test func refusesNestingPastTheLimit() {
        let deep = String(repeating: "[", count: 600) + String(repeating: "]", count: 600)
        #expect(throws: (any Error).self) { try JSONValue.parse(Data(deep.utf8)) }
    }

    @Test func integersStayIntegers() throws {
        #expect(try JSONValue.parse(Data("50".utf8)) == .int(50))
        #expect(JSONValue.double(50).jsonString() == "50")
        #expect(JSONValue.object(["b": 1, "a": 2]).jsonString() == #"{"a":2,"b":1}"#)
    }
}
