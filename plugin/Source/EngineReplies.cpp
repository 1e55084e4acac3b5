// The receiving half of EngineLink: what the engine sends back, handled on
// JUCE's OSC receiver thread (dreamed audio placed in the timeline, scores,
// status, acks and errors).
#include "EngineLink.h"

namespace genredream {

namespace {

float getBigEndian (const uint8_t* p)
{
    const uint32_t u = ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) | ((uint32_t) p[2] << 8) | (uint32_t) p[3];
    float v;
    std::memcpy (&v, &u, 4);
    return v;
}

// Incoming numbers may be i or f (docs/osc.md).
bool number (const juce::OSCArgument& a, double& out)
{
    if (a.isInt32()) { out = a.getInt32(); return true; }
    if (a.isFloat32()) { out = a.getFloat32(); return true; }
    return false;
}

int scoreIndex (const juce::String& label)
{
    for (int k = 0; k < kNumScores; ++k)
        if (label == kScoreLabels[k])
            return k;
    return -1;
}

} // namespace

void EngineLink::oscBundleReceived (const juce::OSCBundle& b)
{
    for (auto& e : b)
        if (e.isMessage())
            oscMessageReceived (e.getMessage());
}

void EngineLink::oscMessageReceived (const juce::OSCMessage& m)
{
    const auto address = m.getAddressPattern().toString();
    if (address == "/genredream/audio/out/bi")
        handleDream (m);
    else if (address == "/genredream/scores")
        handleScores (m);
    else if (address == "/genredream/status")
        handleStatus (m);
    else if (address == "/genredream/top" && m.size() >= 3 && m[1].isString() && m[2].isFloat32())
    {
        const juce::SpinLock::ScopedLockType sl (statsLock);
        stats.topGenre = m[1].getString();
        stats.topScore = m[2].getFloat32();
    }
    else if (address == "/genredream/ack" && m.size() >= 7 && m[0].isString() && m[0].getString() == "/genredream/subscribe")
    {
        double lease = 0.0;
        if (number (m[6], lease))
            leaseS = lease;
    }
    else if (address == "/genredream/error" && m.size() >= 2 && m[0].isString() && m[1].isString())
    {
        const juce::SpinLock::ScopedLockType sl (statsLock);
        stats.lastError = m[0].getString() + ": " + m[1].getString();
    }
}

void EngineLink::handleDream (const juce::OSCMessage& m)
{
    // seq rate channels hi lo blob
    if (m.size() < 6 || ! m[1].isInt32() || ! m[2].isInt32() || ! m[3].isInt32() || ! m[4].isInt32() || ! m[5].isBlob() || output == nullptr)
        return;
    if (! streamOpen.load())
        return;
    if (std::abs (m[1].getInt32() - rate) > 0.5)
    {
        const juce::SpinLock::ScopedLockType sl (statsLock);
        stats.wrongRate++;
        return;
    }
    const int ch = juce::jmax (1, m[2].getInt32());
    const int64_t index = (int64_t) m[3].getInt32() * 16777216 + m[4].getInt32();
    const int64_t first = toInputFrame (index);
    if (first < 0)
        return;
    const auto& data = m[5].getBlob();
    const int frames = (int) (data.getSize() / (4 * (size_t) ch));
    const auto* bytes = static_cast<const uint8_t*> (data.getData());
    float frame[8];
    for (int k = 0; k < frames; ++k)
    {
        for (int c = 0; c < juce::jmin (ch, 8); ++c)
            frame[c] = getBigEndian (bytes + 4 * ((size_t) k * ch + c));
        output->write (first + k, frame, juce::jmin (ch, 8));
    }
    dreamWrites.fetch_add (1, std::memory_order_release);

    // Round trip of the packet holding this blob's first frame, and how early
    // it came: the frame plays when the audio thread is latency frames past it.
    const double now = linkNowMs();
    const double sentAt = sendTimes[(size_t) ((index / kPacketFrames) % kSendTimes)].load (std::memory_order_relaxed);
    const double slackMs = (double) (first + latencyFrames.load() - audioFrames.load()) / rate * 1000.0;
    const juce::SpinLock::ScopedLockType sl (statsLock);
    stats.dreamPackets++;
    if (sentAt > 0.0)
        roundTrips[roundTripNext++ % roundTrips.size()] = now - sentAt;
    minSlackWindowMs = juce::jmin (minSlackWindowMs, slackMs);
}

void EngineLink::handleScores (const juce::OSCMessage& m)
{
    for (int i = 1; i + 1 < m.size(); i += 2)
    {
        if (! m[i].isString() || ! m[i + 1].isFloat32())
            continue;
        const int k = scoreIndex (m[i].getString());
        if (k < 0)
            continue;
        const float v = juce::jlimit (0.0f, 1.0f, m[i + 1].getFloat32());
        scores[(size_t) k].store (v, std::memory_order_relaxed);
        if (onScore)
            onScore (k, v);
    }
}

void EngineLink::handleStatus (const juce::OSCMessage& m)
{
    bool running = false, loading = false;
    for (int i = 0; i + 1 < m.size(); i += 2)
    {
        if (! m[i].isString())
            continue;
        const auto key = m[i].getString();
        double v = 0.0;
        if (key == "state")
            loading = m[i + 1].isString() && m[i + 1].getString() == "loading";
        else if (key == "sample_rate")
            running = true;
        else if (key == "dream_latency_ms" && number (m[i + 1], v))
        {
            if (v > 0.0)
                dreamLatencyMs = v;
        }
        else if (key == "lease_s" && number (m[i + 1], v))
            leaseS = v;
        else if (key == "packets" && number (m[i + 1], v))
        {
            // The engine counts every datagram since it started: a smaller
            // count than before means a new engine (killed and restarted).
            if (lastPackets >= 0 && (int64_t) v < lastPackets)
                engineRestarted = true;
            lastPackets = (int64_t) v;
        }
    }
    engineLoading = loading;
    if (running && ! loading)
        lastRunningMs = linkNowMs();
    statusArrived.signal();
}

} // namespace genredream
