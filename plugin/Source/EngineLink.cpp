// The sending half of EngineLink: the socket, the stream of input packets,
// the subscription and its renewal, the engine's status polled twice a second.
#include "EngineLink.h"

#if JUCE_LINUX || JUCE_MAC || JUCE_BSD
 #include <sys/socket.h>
#endif

namespace genredream {

namespace {

// OSC blobs carry float32 big-endian (docs/osc.md, "Types").
void putBigEndian (float v, uint8_t* p)
{
    uint32_t u;
    std::memcpy (&u, &v, 4);
    p[0] = (uint8_t) (u >> 24); p[1] = (uint8_t) (u >> 16); p[2] = (uint8_t) (u >> 8); p[3] = (uint8_t) u;
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
        writeStatusFile (linkNowMs());   // the last word, for a host that has just stopped
    }
}

bool EngineLink::probe (int timeoutMs)
{
    if (addressChanged.exchange (false))
        sender.connectToSocket (socket, getEngineHost(), getEnginePort());
    statusArrived.reset();
    send (juce::OSCMessage ("/genredream/status"));
    const auto deadline = linkNowMs() + timeoutMs;
    while (linkNowMs() < deadline)
    {
        statusArrived.wait (juce::jmax (1, (int) (deadline - linkNowMs())));
        if (linkNowMs() - lastRunningMs.load() < 1000.0)
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
    lastSubscribeMs = linkNowMs();
}

void EngineLink::beginStream()
{
    // A stream to a new engine (or one that lost us) starts at sequence 0:
    // the engine counts its frames from there (docs/osc.md, "bi").
    sequence = 0;
    engineFrames = 0;
    streamStartMs = linkNowMs();
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
        sendTimes[(size_t) ((engineFrames / kPacketFrames) % kSendTimes)].store (linkNowMs(), std::memory_order_relaxed);
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
        const double now = linkNowMs();
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
    s.connected = linkNowMs() - lastRunningMs.load() < 2500.0;
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
