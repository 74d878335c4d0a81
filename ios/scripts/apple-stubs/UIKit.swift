// Stand-ins for the parts of UIKit that Sources/Starling/Platform uses, with the iOS 18 SDK's
// signatures, isolation and Sendable annotations. For scripts/typecheck-apple-glue.sh only.
@_exported import Foundation

public struct UIBackgroundTaskIdentifier: Hashable, Sendable, RawRepresentable {
    public var rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }
    public static let invalid = UIBackgroundTaskIdentifier(rawValue: 0)
}
@MainActor open class UIResponder {}
@MainActor open class UIApplication: UIResponder {
    public static var shared: UIApplication { fatalError() }
    nonisolated public static let didEnterBackgroundNotification = Notification.Name("a")
    nonisolated public static let willEnterForegroundNotification = Notification.Name("b")
    open func beginBackgroundTask(
        withName taskName: String?,
        expirationHandler handler: (@MainActor @Sendable () -> Void)? = nil
    ) -> UIBackgroundTaskIdentifier { fatalError() }
    open func endBackgroundTask(_ identifier: UIBackgroundTaskIdentifier) {}
}
