// The genredream plugin: streams its input to the engine, plays the dream
// back at a fixed latency the host compensates, and exposes the scores as
// parameters (and MIDI CCs). Everything network-side lives in EngineLink.
#pragma once

#include <juce_audio_processors/juce_audio_processors.h>

#include "EngineLink.h"
#include "Timeline.h"

namespace genredream {

// What the plugin adds to the engine's dream latency, and why (docs/plugin.md):
// a packet of input waits to be full before it is sent, the host's block
// is processed only once it is whole, and the network and the engine's send
// burst need a margin of their own.
constexpr double kMarginMs = 100.0;
// The engine's dream latency before the engine has told us its own.
constexpr double kDefaultDreamLatencyMs = 1250.0;
// The host's block in the latency: at least this many frames.
constexpr int kBlockAllowance = 1024;
// Crossfade between dream and dry when a dreamed frame is missing, in frames.
constexpr int kFadeFrames = 256;
// MIDI CC of score k (channel 1): kFirstScoreCC + k.
constexpr int kFirstScoreCC = 20;

class GenredreamProcessor : public juce::AudioProcessor,
                            private juce::AudioProcessorValueTreeState::Listener,
                            private juce::AsyncUpdater
{
public:
    GenredreamProcessor();
    ~GenredreamProcessor() override;

    void prepareToPlay (double sampleRate, int samplesPerBlock) override;
    void releaseResources() override;
    bool isBusesLayoutSupported (const BusesLayout&) const override;
    void processBlock (juce::AudioBuffer<float>&, juce::MidiBuffer&) override;
    using juce::AudioProcessor::processBlock;

    juce::AudioProcessorEditor* createEditor() override;
    bool hasEditor() const override { return true; }

    const juce::String getName() const override { return "genredream"; }
    bool acceptsMidi() const override { return false; }
    bool producesMidi() const override { return true; }
    bool isMidiEffect() const override { return false; }
    double getTailLengthSeconds() const override { return 0.0; }

    int getNumPrograms() override { return 1; }
    int getCurrentProgram() override { return 0; }
    void setCurrentProgram (int) override {}
    const juce::String getProgramName (int) override { return {}; }
    void changeProgramName (int, const juce::String&) override {}

    void getStateInformation (juce::MemoryBlock&) override;
    void setStateInformation (const void*, int) override;

    // The latency reported with the dream on, in frames at the current rate.
    int dreamLatencyFrames (double dreamLatencyMs) const;
    void setEngineAddress (const juce::String& host, int port);
    juce::String statusLine() const;

    EngineLink link;
    juce::AudioProcessorValueTreeState params;
    std::atomic<int64_t> lateBlocks { 0 }, dreamBlocks { 0 }, dreamFrames { 0 }, dryFrames { 0 };
    std::atomic<int64_t> offlineWaits { 0 }, inputOverflows { 0 }, latencyChanges { 0 };

private:
    void parameterChanged (const juce::String& id, float value) override;
    void handleAsyncUpdate() override;
    void updateLatency();
    void waitForDream (int64_t lastFrame);

    juce::RangedAudioParameter* scoreParams[kNumScores] {};
    std::atomic<float>* dreamParam = nullptr;

    FrameFifo fifo;
    DreamTimeline timeline;
    std::vector<float> dryRing;   // audio thread only
    int ringFrames = 0, channels = 2, maxBlock = 512, preparedBlockRoom = 0;
    double sampleRate = 48000.0;
    int64_t absFrames = 0;        // input frames seen since prepare (audio thread)
    float gain = 0.0f;            // dream share of the output, 0..1
    int lookRun = 0;              // consecutive lookahead frames found
    uint32_t offlineStallAt = 0;  // dreamWrites when an offline wait last gave up
    bool offlineStalled = false;
    int midiSent[kNumScores] {};
    std::atomic<double> knownDreamLatencyMs { kDefaultDreamLatencyMs };
    std::atomic<int> activeLatency { 0 };

    JUCE_DECLARE_NON_COPYABLE_WITH_LEAK_DETECTOR (GenredreamProcessor)
};

} // namespace genredream
