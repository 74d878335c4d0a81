package dev.starling.android

import dev.starling.LearningEligibility
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test

class LearningConditionsTest {
    @Test
    fun `training needs charging, an unmetered network that is up, and idleness`() {
        val ideal = DeviceConditions(isOnline = true, isUnmetered = true, isCharging = true)
        assertEquals(LearningEligibility.ELIGIBLE, ideal.learningEligibility(idle = true))
        assertEquals(LearningEligibility(true, true, false), ideal.learningEligibility(idle = false))
        val offline = DeviceConditions(isOnline = false, isUnmetered = true, isCharging = true)
        assertEquals(LearningEligibility(true, false, true), offline.learningEligibility(idle = true))
        val onBattery = ideal.copy(isCharging = false)
        assertEquals(LearningEligibility(false, true, true), onBattery.learningEligibility(idle = true))
    }
}
