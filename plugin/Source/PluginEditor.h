// A minimal editor: engine address, connection, latency, late blocks, the
// top genre and score bars. The plugin works the same without it.
#pragma once

#include <juce_gui_basics/juce_gui_basics.h>

#include "PluginProcessor.h"

namespace genredream {

class GenredreamEditor : public juce::AudioProcessorEditor, private juce::Timer
{
public:
    explicit GenredreamEditor (GenredreamProcessor&);
    ~GenredreamEditor() override;

    void paint (juce::Graphics&) override;
    void resized() override;

private:
    void timerCallback() override;

    GenredreamProcessor& processor;
    juce::Label addressLabel { {}, "engine" };
    juce::TextEditor address;
    juce::ToggleButton dream { "dream" };
    juce::Label depthLabel { {}, "depth" }, mixLabel { {}, "mix" };
    juce::Slider depth, mix;
    juce::ComboBox target;
    std::unique_ptr<juce::AudioProcessorValueTreeState::ButtonAttachment> dreamAttachment;
    std::unique_ptr<juce::AudioProcessorValueTreeState::SliderAttachment> depthAttachment, mixAttachment;
    std::unique_ptr<juce::AudioProcessorValueTreeState::ComboBoxAttachment> targetAttachment;
};

} // namespace genredream
