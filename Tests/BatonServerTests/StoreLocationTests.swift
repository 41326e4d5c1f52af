import BatonAPI
import BatonServer
import Testing

/// `baton server --store`: what it accepts, and what it refuses, by name.
@Suite struct StoreLocationTests {
    @Test(arguments: [
        ("sqlite", StoreLocation.sqlite),
        ("etcd://h1:2379", .etcd(endpoints: ["http://h1:2379"], prefix: "/baton/")),
        ("etcd://h1:2379,h2:2379,h3:2379", .etcd(endpoints: ["http://h1:2379", "http://h2:2379", "http://h3:2379"], prefix: "/baton/")),
        ("etcd://10.0.0.1:2379/prod/baton/", .etcd(endpoints: ["http://10.0.0.1:2379"], prefix: "/prod/baton/")),
    ])
    func accepted(text: String, expected: StoreLocation) throws {
        #expect(try StoreLocation.parse(text) == expected)
    }

    @Test(arguments: [
        ("mysql://db", "--store must be sqlite or etcd://HOST:PORT[,HOST:PORT...][/PREFIX], not \"mysql://db\""),
        ("etcd://h1", "--store must be sqlite or etcd://HOST:PORT[,HOST:PORT...][/PREFIX]: \"h1\" in \"etcd://h1\" is not HOST:PORT"),
        ("etcd://h1:2379,,h2:2379", "--store must be sqlite or etcd://HOST:PORT[,HOST:PORT...][/PREFIX]: \"\" in \"etcd://h1:2379,,h2:2379\" is not HOST:PORT"),
        ("etcd://h1:99999", "--store must be sqlite or etcd://HOST:PORT[,HOST:PORT...][/PREFIX]: \"h1:99999\" in \"etcd://h1:99999\" is not HOST:PORT"),
        ("etcd://", "--store must be sqlite or etcd://HOST:PORT[,HOST:PORT...][/PREFIX]: \"\" in \"etcd://\" is not HOST:PORT"),
    ])
    func refused(text: String, message: String) {
        #expect(throws: APIError.self) { try StoreLocation.parse(text) }
        do {
            _ = try StoreLocation.parse(text)
        } catch {
            #expect(error.message == message)
        }
    }

    @Test func describesItselfAsTyped() throws {
        #expect(try StoreLocation.parse("etcd://h1:2379,h2:2379").description == "etcd://h1:2379,h2:2379")
        #expect(try StoreLocation.parse("etcd://h1:2379/x").description == "etcd://h1:2379/x")
    }
}
