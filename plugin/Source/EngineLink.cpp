#include "EngineLink.h"

#if JUCE_LINUX || JUCE_MAC || JUCE_BSD
 #include <sys/socket.h>
#endif

namespace genredream {

namespace {

double nowMs() { return juce::Time::getMillisecondCounterHiRes(); }

// OSC blobs carry float32 big-endian (docs/osc.md, "Types").
void putBigEndian (float v, uint8_t* p)
{
    uint32_t u;
    std::memcpy (&u, &v, 4);
    p[0] = (uint8_t) (u >> 24); p[1] = (uint8_t) (u >> 16); p[2] = (uint8_t) (u >> 8); p[3] = (uint8_t) u;
}

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

EngineLink::EngineLink() : juce::Thread ("genredream-osc-send")
{
    if (auto env = juce::SystemStats::getEnvironmentVariable ("GENREDREAM_ENGINE", {}); env.isNotEmpty())
    {
        engineHost = env.upToLastOccurrenceOf (":", false, false);
        enginePort = env.fromLastOccurrenceOf (":", false, false).getIntValue();
        if (engineHost.isEmpty()) engineHost = "127.0.0.1";
        if (enginePort <= 0 || enginePort > 65535) enginePort = 9137;
    }
    if (auto path = juce::SystemStats::getEnvironmentVariable ("GENREDREAM_PLUGIN_STATUS", {}); path.isNotEmpty())
        statusFile = juce::File (path);

    socket.bindToPort (0);
   #if JUCE_LINUX || JUCE_MAC || JUCE_BSD
    // A hop of dreamed audio arrives as one burst (~50 packets of 4 KB).
    int bytes = 1 << 20;
    setsockopt (socket.getRawSocketHandle(), SOL_SOCKET, SO_RCVBUF, &bytes, sizeof (bytes));
   #endif
    receiver.addListener (this);
    receiver.connectToSocket (socket);
    packet.resize ((size_t) kPacketFrames * 8);
    roundTrips.assign (512, -1.0);
    for (auto& s : scores) s.store (0.0f);
    for (auto& t : sendTimes) t.store (-1.0);
}

EngineLink::~EngineLink()
{
    shutdown();
    socket.shutdown();
}

void EngineLink::shutdown()
{
    stop();
    receiver.removeListener (this);
    receiver.disconnect();
}

void EngineLink::setEngine (const juce::String& host, int port)
{
    {
        const juce::SpinLock::ScopedLockType sl (addressLock);
        engineHost = host.isEmpty() ? juce::String ("127.0.0.1") : host;
        enginePort = juce::jlimit (1, 65535, port);
    }
    addressChanged = true;
}

juce::String EngineLink::getEngineHost() const { const juce::SpinLock::ScopedLockType sl (addressLock); return engineHost; }
int EngineLink::getEnginePort() const { const juce::SpinLock::ScopedLockType sl (addressLock); return enginePort; }

void EngineLink::start (double sampleRate, int channels, FrameFifo* in, DreamTimeline* out)
{
    stop();
    rate = sampleRate;
    numChannels = channels;
    input = in;
    output = out;
    framesPopped = 0;
    overflowState = 0;
    streamStart = -1;
    audioFrames = 0;
    needResume = streamOpen;   // the same engine: go on counting, from our frame 0
    startThread (juce::Thread::Priority::high);
}

void EngineLink::stop()
{
    const bool wasRunning = isThreadRunning();
    stopThread (2000);
    streamStart = -1;
    if (wasRunning)
    {
        lastStatusFileMs = 0.0;
        writeStatusFile (nowMs());   // the last word, for a host that has just stopped
    }
}

bool EngineLink::probe (int timeoutMs)
{
    if (addressChanged.exchange (false))
        sender.connectToSocket (socket, getEngineHost(), getEnginePort());
    statusArrived.reset();
    send (juce::OSCMessage ("/genredream/status"));
    const auto deadline = nowMs() + timeoutMs;
    while (nowMs() < deadline)
    {
        statusArrived.wait (juce::jmax (1, (int) (deadline - nowMs())));
        if (nowMs() - lastRunningMs.load() < 1000.0)
            return true;
        statusArrived.reset();
    }
    return false;
}

void EngineLink::send (const juce::OSCMessage& m)
{
    sender.send (m);
}

void EngineLink::setDepth (float v) { depth = v; controlsDirty |= 1; }
void EngineLink::setMix (float v) { mix = v; controlsDirty |= 2; }
void EngineLink::setTarget (const juce::String& label)
{
    { const juce::SpinLock::ScopedLockType sl (targetLock); target = label; }
    targetSet = true;
    controlsDirty |= 4;
}

void EngineLink::sendControls (bool all)
{
    const int dirty = controlsDirty.exchange (0) | (all ? 7 : 0);
    if ((dirty & 1) && depth.load() >= 0.0f)
        send (juce::OSCMessage ("/genredream/dream/depth", depth.load()));
    if ((dirty & 2) && mix.load() >= 0.0f)
        send (juce::OSCMessage ("/genredream/dream/mix", mix.load()));
    if ((dirty & 4) && targetSet.load())
    {
        juce::String t;
        { const juce::SpinLock::ScopedLockType sl (targetLock); t = target; }
        send (juce::OSCMessage ("/genredream/dream/target", t));
    }
}

void EngineLink::subscribe()
{
    // Our own rate and packet size; audio `bi`: every frame says which of ours it dreams.
    juce::OSCMessage m ("/genredream/subscribe");
    m.addString ("");
    m.addInt32 (getLocalPort());
    m.addString ("bi");
    m.addInt32 ((int) std::lround (rate));
    m.addInt32 (kPacketFrames);
    send (m);
    lastSubscribeMs = nowMs();
}

void EngineLink::beginStream()
{
    // A stream to a new engine (or one that lost us) starts at sequence 0:
    // the engine counts its frames from there (docs/osc.md, "bi").
    sequence = 0;
    engineFrames = 0;
    streamStartMs = nowMs();
    for (auto& t : sendTimes) t.store (-1.0, std::memory_order_relaxed);
    {
        const juce::SpinLock::ScopedLockType sl (mapLock);
        numSegments = 0;
    }
    streamOpen = true;
    resumeStream();
    sendControls (true);
    const juce::SpinLock::ScopedLockType sl (statsLock);
    stats.streams++;
}

void EngineLink::resumeStream()
{
    // From here, the engine's frame engineFrames is our input frame framesPopped:
    // frames we could not send (an overflow, a new preparation) are not in the
    // engine's count, so each such jump starts a new piece of the map.
    {
        const juce::SpinLock::ScopedLockType sl (mapLock);
        if (numSegments == (int) segments.size())
        {
            std::move (segments.begin() + 1, segments.end(), segments.begin());
            --numSegments;
        }
        segments[(size_t) numSegments++] = { engineFrames, framesPopped };
    }
    needResume = false;
    subscribe();   // again: the rate may have changed
    streamStart.store (framesPopped, std::memory_order_release);
}

void EngineLink::endStream()
{
    streamOpen = false;
    streamStart.store (-1, std::memory_order_release);
}

int64_t EngineLink::toInputFrame (int64_t engineIndex) const
{
    const juce::SpinLock::ScopedLockType sl (mapLock);
    for (int i = numSegments - 1; i >= 0; --i)
        if (segments[(size_t) i].engineIndex <= engineIndex)
            return segments[(size_t) i].inputFrame + (engineIndex - segments[(size_t) i].engineIndex);
    return -1;
}

void EngineLink::pumpAudio (double now)
{
    // Overflow: drop what is queued, let the audio thread say where it resumes.
    if (overflowState.load (std::memory_order_acquire) == 1)
    {
        input->discard (input->readyToRead());
        streamStart.store (-1, std::memory_order_release);
        needResume = streamOpen;
        framesPopped = -1;   // resumes at resyncFrame
        overflowState.store (2, std::memory_order_release);
        return;
    }
    if (overflowState.load (std::memory_order_acquire) == 2 || framesPopped < 0)
        return;

    const bool sending = streamOpen && ! needResume;
    while (input->readyToRead() >= kPacketFrames)
    {
        if (! sending)
        {
            input->discard (kPacketFrames);
            framesPopped += kPacketFrames;
            continue;
        }
        // Pace an offline bounce to what the engine accepts.
        if ((double) engineFrames / rate * 1000.0 > (now - streamStartMs) * kMaxSendSpeed + 1000.0)
            break;
        const int ch = numChannels;
        input->pop (packet.data(), kPacketFrames);
        blob.setSize ((size_t) kPacketFrames * (size_t) ch * 4, false);
        auto* bytes = static_cast<uint8_t*> (blob.getData());
        for (int i = 0; i < kPacketFrames * ch; ++i)
            putBigEndian (packet[(size_t) i], bytes + 4 * i);
        juce::OSCMessage m ("/genredream/audio/in");
        m.addInt32 (sequence);
        m.addInt32 ((int) std::lround (rate));
        m.addInt32 (ch);
        m.addBlob (blob);
        sendTimes[(size_t) ((engineFrames / kPacketFrames) % kSendTimes)].store (nowMs(), std::memory_order_relaxed);
        send (m);
        sequence = (sequence + 1) & 0x7fffffff;
        engineFrames += kPacketFrames;
        framesPopped += kPacketFrames;
        const juce::SpinLock::ScopedLockType sl (statsLock);
        stats.packetsSent++;
    }
}

void EngineLink::run()
{
    while (! threadShouldExit())
    {
        const double now = nowMs();
        if (addressChanged.exchange (false))
        {
            sender.connectToSocket (socket, getEngineHost(), getEnginePort());
            endStream();
            lastRunningMs = -1.0e9;
        }
        if (overflowState.load (std::memory_order_acquire) == 0 && framesPopped < 0)
            framesPopped = resyncFrame.load();

        // Status twice a second tells whether a running engine is there and its dream latency.
        if (now - lastPollMs >= 500.0)
        {
            send (juce::OSCMessage ("/genredream/status"));
            lastPollMs = now;
        }
        const bool alive = now - lastRunningMs.load() < 2500.0;
        const bool ready = overflowState.load() == 0 && framesPopped >= 0;
        if (streamOpen && (! alive || engineRestarted.exchange (false)))
            endStream();   // a new stream (sequence 0) starts when it answers again
        else if (! streamOpen && alive && ready)
        {
            engineRestarted = false;
            beginStream();
        }
        else if (streamOpen && needResume && ready)
            resumeStream();
        else if (streamOpen)
        {
            const double lease = leaseS.load();
            const double renewMs = lease > 0.0 ? juce::jlimit (1000.0, 5000.0, lease * 1000.0 / 3.0) : 5000.0;
            if (now - lastSubscribeMs >= renewMs)
                subscribe();
            if (controlsDirty.load() != 0)
                sendControls (false);
        }

        pumpAudio (now);

        if (onTick)
            onTick();
        writeStatusFile (now);
        wait (2);
    }
}

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
    const double now = nowMs();
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
        lastRunningMs = nowMs();
    statusArrived.signal();
}

LinkStats EngineLink::getStats() const
{
    LinkStats s;
    {
        const juce::SpinLock::ScopedLockType sl (statsLock);
        s = stats;
        std::vector<double> rt;
        for (auto v : roundTrips)
            if (v >= 0.0)
                rt.push_back (v);
        if (! rt.empty())
        {
            std::sort (rt.begin(), rt.end());
            s.roundTripP50Ms = rt[rt.size() / 2];
            s.roundTripP99Ms = rt[juce::jmin (rt.size() - 1, (size_t) std::ceil (0.99 * (double) rt.size()) - 1)];
        }
        s.minSlackMs = minSlackWindowMs < 1.0e8 ? minSlackWindowMs : 0.0;
    }
    s.connected = nowMs() - lastRunningMs.load() < 2500.0;
    s.loading = engineLoading.load();
    s.streaming = streamStart.load() >= 0;
    s.dreamLatencyMs = dreamLatencyMs.load();
    s.leaseS = leaseS.load();
    return s;
}

void EngineLink::writeStatusFile (double now)
{
    if (statusFile == juce::File() || now - lastStatusFileMs < 200.0)
        return;
    lastStatusFileMs = now;
    if (onStatusLine == nullptr)
        return;
    const auto text = onStatusLine();
    auto tmp = statusFile.getSiblingFile (statusFile.getFileName() + ".tmp");
    if (tmp.replaceWithText (text))
        tmp.moveFileTo (statusFile);
}

} // namespace genredream
