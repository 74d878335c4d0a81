package dev.starling.android

import dev.starling.LearningEligibility

/**
 * The eligibility federated learning needs, from these conditions and whether the device is
 * idle. Idleness is the host's to say: a WorkManager worker constrained with
 * `setRequiresDeviceIdle(true)` runs only then, so it passes `true`.
 */
public fun DeviceConditions.learningEligibility(idle: Boolean): LearningEligibility =
    LearningEligibility(charging = isCharging, unmetered = isOnline && isUnmetered, idle = idle)
