#include "PluginEditor.h"

namespace genredream {

GenredreamEditor::GenredreamEditor (GenredreamProcessor& p)
    : juce::AudioProcessorEditor (p), processor (p)
{
    addAndMakeVisible (addressLabel);
    addAndMakeVisible (address);
    address.setText (p.link.getEngineHost() + ":" + juce::String (p.link.getEnginePort()), false);
    address.onReturnKey = [this]
    {
        const auto text = address.getText().trim();
        processor.setEngineAddress (text.upToLastOccurrenceOf (":", false, false),
                                    text.fromLastOccurrenceOf (":", false, false).getIntValue());
    };
    for (auto* l : { &depthLabel, &mixLabel })
        addAndMakeVisible (*l);
    for (auto* s : { &depth, &mix })
    {
        s->setSliderStyle (juce::Slider::LinearHorizontal);
        s->setTextBoxStyle (juce::Slider::TextBoxRight, false, 50, 20);
        addAndMakeVisible (*s);
    }
    target.addItemList (p.params.getParameter ("target")->getAllValueStrings(), 1);
    addAndMakeVisible (dream);
    addAndMakeVisible (target);
    dreamAttachment = std::make_unique<juce::AudioProcessorValueTreeState::ButtonAttachment> (p.params, "dream", dream);
    depthAttachment = std::make_unique<juce::AudioProcessorValueTreeState::SliderAttachment> (p.params, "depth", depth);
    mixAttachment = std::make_unique<juce::AudioProcessorValueTreeState::SliderAttachment> (p.params, "mix", mix);
    targetAttachment = std::make_unique<juce::AudioProcessorValueTreeState::ComboBoxAttachment> (p.params, "target", target);
    setSize (420, 360);
    startTimerHz (10);
}

GenredreamEditor::~GenredreamEditor() { stopTimer(); }

void GenredreamEditor::resized()
{
    auto r = getLocalBounds().reduced (8);
    auto row = r.removeFromTop (24);
    addressLabel.setBounds (row.removeFromLeft (60));
    address.setBounds (row);
    r.removeFromTop (4);
    row = r.removeFromTop (24);
    dream.setBounds (row.removeFromLeft (80));
    target.setBounds (row);
    row = r.removeFromTop (24);
    depthLabel.setBounds (row.removeFromLeft (60));
    depth.setBounds (row);
    row = r.removeFromTop (24);
    mixLabel.setBounds (row.removeFromLeft (60));
    mix.setBounds (row);
}

void GenredreamEditor::paint (juce::Graphics& g)
{
    g.fillAll (juce::Colour (0xff1e1e24));
    const auto s = processor.link.getStats();
    auto r = getLocalBounds().reduced (8).withTrimmedTop (108);
    g.setColour (s.connected ? juce::Colours::lightgreen : juce::Colours::orange);
    g.setFont (14.0f);
    const auto latency = processor.getLatencySamples();
    // The link to the engine starts with the audio (prepareToPlay): before that there is nothing to send.
    const bool audioRunning = processor.link.isRunning();
    g.drawText (! audioRunning ? "no audio running: start the host's audio device"
                : s.connected ? (s.streaming ? "engine: dreaming" : "engine: connected")
                : (s.loading ? "engine: loading" : "no engine: dry, retrying every second"),
                r.removeFromTop (18), juce::Justification::left);
    g.setColour (juce::Colours::white);
    g.drawText ("latency " + juce::String (latency) + " frames (" + juce::String (latency * 1000.0 / juce::jmax (1.0, processor.getSampleRate()), 0)
                    + " ms)   late blocks " + juce::String (processor.lateBlocks.load()),
                r.removeFromTop (18), juce::Justification::left);
    g.drawText ("top: " + (s.topGenre.isEmpty() ? juce::String ("-") : s.topGenre + " " + juce::String (s.topScore, 2)),
                r.removeFromTop (18), juce::Justification::left);
    if (s.lastError.isNotEmpty())
    {
        g.setColour (juce::Colours::salmon);
        g.drawText (s.lastError, r.removeFromTop (18), juce::Justification::left);
    }
    // The ten highest scores as bars.
    std::vector<std::pair<float, int>> order;
    for (int k = 0; k < kNumScores; ++k)
        order.emplace_back (processor.link.scores[(size_t) k].load(), k);
    std::sort (order.begin(), order.end(), [] (auto& a, auto& b) { return a.first > b.first; });
    r.removeFromTop (6);
    for (int i = 0; i < juce::jmin (10, (int) order.size()) && r.getHeight() >= 16; ++i)
    {
        auto bar = r.removeFromTop (16);
        g.setColour (juce::Colours::white);
        g.drawText (kScoreLabels[order[(size_t) i].second], bar.removeFromLeft (120), juce::Justification::left);
        g.setColour (juce::Colours::steelblue);
        g.fillRect (bar.reduced (0, 2).withWidth ((int) (bar.getWidth() * order[(size_t) i].first)));
    }
}

void GenredreamEditor::timerCallback() { repaint(); }

} // namespace genredream
