import type { Theme } from 'vitepress';
import DefaultTheme from 'vitepress/theme';
import Chart from './components/Chart.vue';
import Playground from './components/Playground.vue';

export default {
  extends: DefaultTheme,
  enhanceApp({ app }) {
    app.component('Chart', Chart);
    app.component('Playground', Playground);
  },
} satisfies Theme;
