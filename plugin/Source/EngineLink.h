// The plugin's side of the OSC protocol (docs/osc.md): one UDP socket on an
// ephemeral port both sends and receives, so the engine sees the subscriber
// and the audio sender as the same host:port. A sender thread streams the
// input and keeps the subscription; JUCE's OSC receiver thread places the
// dreamed frames by their index and writes the scores. Neither ever touches
// the audio thread except through the lock-free FrameFifo and DreamTimeline.
#pragma once

#include <array>
#include <atomic>
#include <functional>
#include <memory>

#include <juce_osc/juce_osc.h>

#include "GenreLabels.h"
#include "Timeline.h"

namespace genredream {

inline double linkNowMs() { return juce::Time::getMillisecondCounterHiRes(); }

constexpr int kNumScores = (int) (sizeof (kScoreLabels) / sizeof (kScoreLabels[0]));
// Frames per /audio/in packet: fixed, so a packet the engine loses is
// zero-filled with the same length and the indices stay exact.
constexpr int kPacketFrames = 512;
// Never stream faster than this many times real time (the engine drops
// audio beyond 4x as `overloaded`).
constexpr double kMaxSendSpeed = 3.0;

struct LinkStats
{
    bool connected = false, streaming = false, loading = false;
    double dreamLatencyMs = -1.0, leaseS = 0.0;
    double roundTripP50Ms = -1.0, roundTripP99Ms = -1.0, minSlackMs = 0.0;
    int64_t packetsSent = 0, dreamPackets = 0, streams = 0, wrongRate = 0;
    juce::String topGenre, lastError;
    float topScore = 0.0f;
};

class EngineLink : private juce::Thread,
                   private juce::OSCReceiver::Listener<juce::OSCReceiver::RealtimeCallback>
{
public:
    EngineLink();
    ~EngineLink() override;

    // The engine's address (message thread). Takes effect at once.
    void setEngine (const juce::String& host, int port);
    juce::String getEngineHost() const;
    int getEnginePort() const;
    int getLocalPort() const { return socket.getBoundPort(); }

    // Start streaming at `sampleRate` with `channels`; the FIFO and timeline
    // must be allocated by the caller before and left alone until stop().
    void start (double sampleRate, int channels, FrameFifo* in, DreamTimeline* out);
    void stop();
    /** True between start() and stop(): the audio is running and the link talks to the engine. */
    bool isRunning() const { return isThreadRunning(); }
    // Stop both threads for good (before the callbacks' owner goes away).
    void shutdown();

    // Ask the engine for its status and wait up to `timeoutMs` for the answer
    // (message thread, before audio starts): true when a running engine answered.
    bool probe (int timeoutMs);

    // --- shared with the audio thread (atomics only) ---
    // Absolute input frame of the current stream's first frame; -1 while no
    // stream runs (no engine): the audio thread plays dry then.
    std::atomic<int64_t> streamStart { -1 };
    // Overflow handshake: 0 normal; 1 the audio thread could not push (the
    // sender drops what is queued and answers 2); at 2 the audio thread
    // records where it resumes in resyncFrame and returns to 0.
    std::atomic<int> overflowState { 0 };
    std::atomic<int64_t> resyncFrame { 0 };
    // Input frames the audio thread has pushed, after its last block (slack).
    std::atomic<int64_t> audioFrames { 0 };
    std::atomic<int> latencyFrames { 0 };
    // Bumped whenever dreamed frames arrive (offline waits watch it).
    std::atomic<uint32_t> dreamWrites { 0 };

    // Scores by kScoreLabels index (receiver thread writes, anyone reads).
    std::array<std::atomic<float>, kNumScores> scores {};
    std::function<void (int, float)> onScore;   // receiver thread; set before start()
    // The line written to $GENREDREAM_PLUGIN_STATUS (sender thread); set before start().
    std::function<juce::String()> onStatusLine;
    // Called on the sender thread every loop (the processor updates its latency there).
    std::function<void()> onTick;

    // Controls to forward (any thread): sent now and again after each reconnect
    // once set; an empty target means none (the engine's own choice).
    void setDepth (float v);
    void setMix (float v);
    void setTarget (const juce::String& label);

    double getDreamLatencyMs() const { return dreamLatencyMs.load(); }
    LinkStats getStats() const;

private:
    void run() override;
    void oscMessageReceived (const juce::OSCMessage&) override;
    void oscBundleReceived (const juce::OSCBundle&) override;

    void handleDream (const juce::OSCMessage&);
    void handleScores (const juce::OSCMessage&);
    void handleStatus (const juce::OSCMessage&);
    void send (const juce::OSCMessage&);
    void subscribe();
    void sendControls (bool all);
    void beginStream();
    void resumeStream();
    void endStream();
    int64_t toInputFrame (int64_t engineIndex) const;
    void pumpAudio (double nowMs);
    void writeStatusFile (double nowMs);

    juce::DatagramSocket socket { false };
    juce::OSCSender sender;
    juce::OSCReceiver receiver { "genredream-osc-recv" };

    mutable juce::SpinLock addressLock;
    juce::String engineHost { "127.0.0.1" };
    int enginePort = 9137;
    std::atomic<bool> addressChanged { true };

    double rate = 48000.0;
    int numChannels = 2;
    FrameFifo* input = nullptr;
    DreamTimeline* output = nullptr;

    // Sender-thread state.
    int64_t framesPopped = 0;      // absolute input frame of the next frame in the FIFO (-1: awaiting resync)
    int64_t engineFrames = 0;      // frames sent in the current stream: the engine's count
    double streamStartMs = 0.0;
    int32_t sequence = 0;
    std::atomic<bool> streamOpen { false };   // streaming to this engine (its count is ours)
    bool needResume = false;                  // frames were skipped: map the next ones afresh

    // The engine's frame index -> our input frame, piecewise (sender writes, receiver reads).
    struct IndexSegment { int64_t engineIndex, inputFrame; };
    mutable juce::SpinLock mapLock;
    std::array<IndexSegment, 8> segments {};
    int numSegments = 0;
    double lastPollMs = 0.0, lastSubscribeMs = 0.0;
    std::vector<float> packet;
    juce::MemoryBlock blob;
    juce::File statusFile;
    double lastStatusFileMs = 0.0;

    // Receiver -> sender.
    std::atomic<double> lastRunningMs { -1.0e9 };
    std::atomic<bool> engineLoading { false };
    std::atomic<bool> engineRestarted { false };
    std::atomic<double> dreamLatencyMs { -1.0 };
    std::atomic<double> leaseS { 0.0 };
    int64_t lastPackets = -1;
    juce::WaitableEvent statusArrived;

    // Round trip: send time of each packet of the stream, by packet number.
    static constexpr int kSendTimes = 4096;
    std::array<std::atomic<double>, kSendTimes> sendTimes {};

    // Controls.
    std::atomic<float> depth { -1.0f }, mix { -1.0f };
    mutable juce::SpinLock targetLock;
    juce::String target;
    std::atomic<bool> targetSet { false };
    std::atomic<int> controlsDirty { 0 };

    // Statistics (receiver/sender threads; read under statsLock).
    mutable juce::SpinLock statsLock;
    LinkStats stats;
    std::vector<double> roundTrips;   // ring of the last 512
    size_t roundTripNext = 0;
    double minSlackWindowMs = 1.0e9;
};

} // namespace genredream
