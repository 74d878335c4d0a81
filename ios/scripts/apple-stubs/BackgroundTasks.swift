// Stand-ins for the parts of BackgroundTasks that Sources/Starling/Platform uses, with the iOS 18
// SDK's Sendable annotations. For scripts/typecheck-apple-glue.sh only.
import Foundation

open class BGTask: NSObject {
    open var identifier: String { "" }
    open var expirationHandler: (@Sendable () -> Void)?
    open func setTaskCompleted(success: Bool) {}
}
open class BGTaskRequest: NSObject {
    open var earliestBeginDate: Date?
}
open class BGProcessingTaskRequest: BGTaskRequest {
    public init(identifier: String) {}
    open var requiresNetworkConnectivity = false
    open var requiresExternalPower = false
}
open class BGTaskScheduler: NSObject {
    nonisolated(unsafe) public static let shared = BGTaskScheduler()
    open func register(
        forTaskWithIdentifier identifier: String, using queue: DispatchQueue?,
        launchHandler: @escaping @Sendable (BGTask) -> Void
    ) -> Bool { true }
    open func submit(_ taskRequest: BGTaskRequest) throws {}
    open func cancel(taskRequestWithIdentifier identifier: String) {}
}
